#!/bin/sh
# Fits y = a*x + b by full-batch gradient descent (LR, EPOCHS from params).
set -eu
mkdir -p "$(dirname "$2")"
awk -F, -v lr="$LR" -v epochs="$EPOCHS" '
{ x[NR] = $1; y[NR] = $2 }
END {
	a = 0; b = 0
	for (e = 1; e <= epochs; e++) {
		ga = 0; gb = 0
		for (i = 1; i <= NR; i++) { d = a * x[i] + b - y[i]; ga += d * x[i]; gb += d }
		a -= lr * 2 * ga / NR; b -= lr * 2 * gb / NR
		if (e % 100 == 0) printf "epoch %d: a=%.4f b=%.4f\n", e, a, b > "/dev/stderr"
	}
	printf "%.6f %.6f\n", a, b
}' "$1" > "$2.tmp"
mv "$2.tmp" "$2"
echo "model: $(cat "$2")"
