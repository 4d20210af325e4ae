"""Writes a package tree of about SIZE_MB megabytes for the benchmarks:
files from 4 KiB to 4 MiB of text-like data (compresses about 3:1, like
binaries and jars do), deterministic for a given seed."""
import os
import random
import sys

def main(out, size_mb):
    rng = random.Random(42)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(rng.randint(2, 12))) for _ in range(4096)]
    target = size_mb * 1024 * 1024
    written = 0
    n = 0
    while written < target:
        size = min(int(4096 * (2 ** rng.uniform(0, 10))), target - written)
        d = os.path.join(out, "lib", f"m{n % 37}", f"s{n % 5}")
        os.makedirs(d, exist_ok=True)
        chunks = []
        have = 0
        while have < size:
            w = rng.choice(words)
            chunks.append(w)
            have += len(w) + 1
        data = b" ".join(chunks)[:size]
        with open(os.path.join(d, f"f{n}.dat"), "wb") as f:
            f.write(data)
        written += size
        n += 1
    os.makedirs(os.path.join(out, "bin"), exist_ok=True)
    with open(os.path.join(out, "bin", "run"), "w") as f:
        f.write("#!/bin/sh\necho run\n")
    os.chmod(os.path.join(out, "bin", "run"), 0o755)
    print(f"{n} files, {written} bytes", file=sys.stderr)

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
