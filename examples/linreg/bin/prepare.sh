#!/bin/sh
# Writes n points of y = 3x + 2 plus deterministic noise to /work/data/train.csv.
set -eu
n=${1:-200}
mkdir -p /work/data
awk -v n="$n" 'BEGIN {
	srand(42)
	for (i = 0; i < n; i++) {
		x = i / n
		printf "%.6f,%.6f\n", x, 3 * x + 2 + (rand() - 0.5) * 0.2
	}
}' > /work/data/train.csv.tmp
mv /work/data/train.csv.tmp /work/data/train.csv
echo "prepared $n points"
