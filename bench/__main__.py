"""`make bench`: run every benchmark and print its results (record them in bench/RESULTS.md)."""
from bench import cold_start, copy_memory, lots, throughput

if __name__ == "__main__":
    cold_start.main(["--runs", "3"])
    copy_memory.main(["--size-mb", "200"])
    copy_memory.main(["--size-mb", "200", "--video"])
    throughput.main(["--clients", "8", "--submits", "25"])
    lots.main(["--submits", "60", "--debits", "200"])
