"""`make bench`: run every benchmark and print its results (record them in bench/RESULTS.md)."""
from bench import burst_sim, cold_start, copy_memory, lots, scale, throughput

if __name__ == "__main__":
    cold_start.main(["--runs", "3"])
    copy_memory.main(["--size-mb", "200"])
    copy_memory.main(["--size-mb", "200", "--video"])
    throughput.main(["--clients", "8", "--submits", "25"])
    lots.main(["--submits", "60", "--debits", "200"])
    scale.main(["--depths", "10", "1000", "5000", "--keys", "1", "4"])  # about 10 minutes: 12,000 tasks in moto
    burst_sim.main([])
    burst_sim.main(["--api-rate", "1000", "--api-burst", "2000"])
