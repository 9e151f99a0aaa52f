"""`make bench`: run every benchmark and print its results (record them in bench/RESULTS.md)."""
from bench import cold_start, copy_memory

if __name__ == "__main__":
    cold_start.main(["--runs", "3"])
    copy_memory.main(["--size-mb", "200"])
