#!/usr/bin/env bats
# The experiment table: runs shows the params that differ and the metrics,
# filters and sorts them, and --csv/--json carry every column; run --name
# labels a run; params diff and a compact metrics --diff (--all for every
# value) compare two runs.

load helpers

# train writes lr into its model; evaluate reports accuracy = lr, a fixed
# loss, nested per-class values and a confusion matrix.
pipeline() {
	mkdir -p bin
	cat > bin/train.sh <<'EOS'
echo "lr=$LR epochs=$EPOCHS" > /vol/model.txt
EOS
	cat > bin/evaluate.sh <<'EOS'
lr=$(sed -n 's/^lr=\([^ ]*\).*/\1/p' /vol/model.txt)
printf '{"accuracy": %s, "loss": 0.5, "per_class": {"cat": %s, "dog": 0.7}, "confusion": [[1, 2], [3, 4]]}\n' "$lr" "$lr" > /vol/metrics.json
EOS
	spec <<'EOS'
volumes:
  vol: {}
stages:
  train:
    command: sh /app/train.sh
    volumes: [vol:/vol, ./bin:/app:ro]
    params: {lr: 0.1, epochs: 1, seed: 7}
    environment: {LR: "${params.lr}", EPOCHS: "${params.epochs}"}
    outputs: [vol:/model.txt]
  evaluate:
    command: sh /app/evaluate.sh
    volumes: [vol:/vol, ./bin:/app:ro]
    inputs: [vol:/model.txt]
    metrics: [vol:/metrics.json]
EOS
}

# Three runs: base (lr 0.1), high (lr 0.3), and an unnamed lr 0.2 epochs 2.
three_runs() {
	pipeline
	run_ok -q run --name base
	run_ok -q run --set train.lr=0.3 --name high
	run_ok -q run --set train.lr=0.2 --set train.epochs=2
}

# The value in column $2 (by header name) of the table row whose first
# field is $1 ("STARTED (UTC)" and its values are both two words).
col() {
	awk -v id="$1" -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) n = i }
		$1 == id { print $n }' <<<"$output"
}

@test "runs shows the params and top-level metrics that differ between runs" {
	three_runs
	ids=($(cpipe runs -q))
	run_ok runs
	header=$(head -1 <<<"$output")
	[[ "$header" == *" NAME train.epochs train.lr accuracy  OVERRIDES" ]] || fail "header: $header"
	# seed and loss are the same everywhere; nested metrics wait for --metric.
	[[ "$header" != *train.seed* ]] || fail "an unchanged param is shown"
	[[ "$header" != *loss* ]] || fail "an unchanged metric is shown"
	[[ "$header" != *per_class* && "$header" != *confusion* ]] || fail "nested metrics shown by default"
	[ "$(col "${ids[2]}" NAME)" = base ] || fail "name of the first run"
	[ "$(col "${ids[1]}" NAME)" = high ] || fail "name of the second run"
	[ "$(col "${ids[0]}" NAME)" = - ] || fail "an unnamed run"
	[ "$(col "${ids[1]}" train.lr)" = 0.3 ] || fail "lr of high"
	[ "$(col "${ids[0]}" train.epochs)" = 2 ] || fail "epochs of the third"
	[ "$(col "${ids[2]}" accuracy)" = 0.1 ] || fail "accuracy of base"
	[ "$(col "${ids[0]}" accuracy)" = 0.2 ] || fail "accuracy of the third"
	# With one run listed there is nothing to differ from: its metrics show.
	rm .cpipe/runs/"${ids[0]}".json .cpipe/runs/"${ids[1]}".json
	run_ok runs
	[[ "$(head -1 <<<"$output")" == *" accuracy loss  OVERRIDES" ]] || fail "one run's metrics"
}

@test "runs --param and --metric pick columns by glob; --sort orders by any column" {
	three_runs
	run_ok runs --param 'train.s*' --metric 'per_class.*'
	header=$(head -1 <<<"$output")
	[[ "$header" == *" NAME train.seed per_class.cat per_class.dog  OVERRIDES" ]] || fail "header: $header"
	[[ "$header" != *train.lr* && "$header" != *" accuracy "* ]] || fail "unselected columns shown: $header"
	run_ok runs --sort -accuracy -q
	sorted=$(tr '\n' ' ' <<<"$output")
	run_ok runs --json
	want=$(jq -r 'sort_by(-.metrics.accuracy) | map(.id) | join(" ")' <<<"$output")
	[ "$sorted" = "$want " ] || fail "--sort -accuracy gave $sorted, not $want"
	run_ok runs --sort train.lr
	[ "$(awk 'NR > 1 { print $1 }' <<<"$output" | head -1)" = "$(cpipe runs -q | tail -1)" ] ||
		fail "--sort train.lr does not start with lr 0.1 (the first run)"
	run_ok runs --sort name -q
	[ "$(head -1 <<<"$output")" = "$(cpipe runs -q | tail -1)" ] || fail "base sorts first by name"
	# Runs without the column go last either way.
	[ "$(tail -1 <<<"$output")" = "$(cpipe runs -q | head -1)" ] || fail "the unnamed run sorts last"
	run cpipe runs --sort acuracy
	[ "$status" -eq 2 ] || fail "an unknown sort column is exit $status"
	assert_contains 'no column "acuracy"'
}

@test "runs --csv and --json carry every param and every metric leaf" {
	three_runs
	run_ok runs --csv
	[ "$(wc -l <<<"$output")" = 4 ] || fail "a header and three rows"
	header=$(head -1 <<<"$output")
	for c in id name started status commit train.epochs train.lr train.seed accuracy loss \
		per_class.cat per_class.dog confusion.0.0 confusion.1.1; do
		[[ ",$header," == *",$c,"* ]] || fail "csv lacks column $c"
	done
	# Fields with a space or comma are quoted; every row has every column.
	[ "$(python3 -c 'import csv,sys; r=list(csv.reader(sys.stdin)); print(len({len(x) for x in r}))' <<<"$output")" = 1 ] ||
		fail "rows of different widths"
	[ "$(python3 -c 'import csv,sys; r=list(csv.DictReader(sys.stdin)); print(r[0]["overrides"], "|", r[2]["name"], r[1]["train.lr"], r[0]["confusion.1.0"])' <<<"$output")" = \
		"train.epochs=2 train.lr=0.2 | base 0.3 3" ] || fail "csv values"
	run_ok runs --json
	[ "$(jq -r '.[1].name' <<<"$output")" = high ]
	[ "$(jq -c '.[0].params' <<<"$output")" = '{"train.epochs":"2","train.lr":"0.2","train.seed":"7"}' ] ||
		fail "params: $(jq -c '.[0].params' <<<"$output")"
	[ "$(jq -c '.[2].metrics | [.accuracy, .["per_class.dog"], .["confusion.0.1"]]' <<<"$output")" = "[0.1,0.7,2]" ]
	run_ok runs --json --metric accuracy
	[ "$(jq -c '.[0].metrics' <<<"$output")" = '{"accuracy":0.2}' ] || fail "--metric filters --json"
	run cpipe runs --json --csv
	[ "$status" -eq 2 ] || fail "--json --csv is exit $status"
}

@test "run --name labels the record and names a run where RUN is asked" {
	pipeline
	run_ok -q run --name baseline
	id=$(cpipe runs -q)
	[ "$(jq -r .name ".cpipe/runs/$id.json")" = baseline ] || fail "record lacks the name"
	run_ok show baseline
	assert_contains "run $id"
	assert_contains "name       baseline"
	run cpipe run --name 'two words'
	[ "$status" -eq 2 ] || fail "a name with a space is exit $status"
	assert_contains "--name two words"
	[ "$(cpipe runs -q | wc -l)" = 1 ] || fail "a refused name still recorded a run"
}

@test "params diff compares two runs' params, compact unless --all" {
	three_runs
	ids=($(cpipe runs -q))
	# Default: the run before the latest against the latest.
	run_ok params diff
	assert_contains "run ${ids[1]} → run ${ids[0]}"
	assert_contains "train.lr      0.3 → 0.2  (--set)"
	assert_contains "train.epochs  1 → 2  (--set)"
	assert_contains "(1 unchanged; --all shows them)"
	refute_contains "train.seed"
	run_ok params diff base high
	assert_contains "train.lr  0.1 → 0.3  (--set)"
	refute_contains "train.epochs"
	run_ok params diff base high --all
	assert_contains "train.seed    7"
	assert_contains "train.epochs  1"
	run_ok params diff base high --param 'train.l*' --json
	[ "$(jq -c '[.from, .to]' <<<"$output")" = "[\"${ids[2]}\",\"${ids[1]}\"]" ]
	[ "$(jq -c '.params' <<<"$output")" = '[{"param":"train.lr","old":"0.1","new":"0.3","changed":true,"override":true}]' ] ||
		fail "json: $(jq -c .params <<<"$output")"
	run cpipe params diff base nosuchrun
	[ "$status" -eq 2 ] || fail "an unknown run is exit $status"
}

@test "metrics --diff shows changed top-level scalars; --all and --metric reach nested ones" {
	three_runs
	run_ok metrics --diff base
	assert_contains "accuracy  0.1 → 0.2  (+0.1)"
	assert_contains "(1 unchanged)"
	assert_contains "(6 nested values not shown"
	refute_contains "per_class"
	refute_contains "confusion"
	run_ok metrics --diff base --all
	assert_contains "per_class.cat  0.1 → 0.2  (+0.1)"
	refute_contains "confusion.0.0"   # unchanged: counted, not listed
	assert_contains "(6 unchanged)"
	run_ok metrics --diff base --metric 'per_class.*'
	assert_contains "per_class.cat  0.1 → 0.2  (+0.1)"
	refute_contains "accuracy"
	assert_contains "(1 unchanged)"
	# show is compact the same way.
	run_ok show latest
	assert_contains "accuracy = 0.2"
	refute_contains "confusion"
	assert_contains "(6 nested metric values not shown"
	run_ok show latest --all
	assert_contains "confusion.1.1 = 4"
	refute_contains "not shown"
}
