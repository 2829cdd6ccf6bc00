#!/bin/sh
# Mean squared error of the model on the data, as metrics JSON.
set -eu
read a b < "$2"
awk -F, -v a="$a" -v b="$b" '
{ d = a * $1 + b - $2; se += d * d; n++ }
END { printf "{\"mse\": %.6f, \"n\": %d, \"a\": %.4f, \"b\": %.4f}\n", se / n, n, a, b }' "$1" > "$3.tmp"
mv "$3.tmp" "$3"
cat "$3"
