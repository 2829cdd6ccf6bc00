#!/usr/bin/env bats
# Looking back on the local runtime: runs, show, lineage, prov, metrics over
# a real prepare → train → evaluate pipeline.

load helpers

# prepare copies a raw file in, train writes a model directory holding the
# learning rate, evaluate writes metrics whose accuracy is that rate.
pipeline() {
	mkdir -p bin src
	echo "raw" > src/raw.txt
	cat > bin/prepare.sh <<'EOF'
mkdir -p /vol/data && cp /src/raw.txt /vol/data/train.txt
EOF
	cat > bin/train.sh <<'EOF'
mkdir -p /vol/model && { cat /vol/data/train.txt; echo "lr=$LR"; } > /vol/model/model.txt
EOF
	cat > bin/evaluate.sh <<'EOF'
lr=$(sed -n 's/^lr=//p' /vol/model/model.txt)
printf '{"accuracy": %s, "loss": {"train": 0.5}, "n": 3}\n' "$lr" > /vol/metrics.json
EOF
	spec <<'EOF'
volumes:
  vol: {}
x-stage: &stage
  volumes: [vol:/vol, ./bin:/app:ro, ./src:/src:ro]
stages:
  prepare:
    <<: *stage
    command: sh /app/prepare.sh
    inputs: [./src/raw.txt]
    outputs: [vol:/data/train.txt]
  train:
    <<: *stage
    command: sh /app/train.sh
    params: {lr: 0.1}
    environment: {LR: "${params.lr}"}
    inputs: [vol:/data/train.txt]
    outputs: [vol:/model]
  evaluate:
    <<: *stage
    command: sh /app/evaluate.sh
    inputs: [vol:/model/model.txt]
    metrics: [vol:/metrics.json]
EOF
}

@test "runs lists runs newest first with ran, skipped and failed counts" {
	pipeline
	run_ok run
	run_ok run
	run_ok runs --json
	[ "$(jq length <<<"$output")" = 2 ]
	[ "$(jq -c '.[0].stages | [.ran, .skipped, .failed]' <<<"$output")" = "[0,3,0]" ] || fail "second run"
	[ "$(jq -c '.[1].stages | [.ran, .skipped, .failed]' <<<"$output")" = "[3,0,0]" ] || fail "first run"
	[ "$(jq -r '.[0].status' <<<"$output")" = succeeded ]
	newest=$(jq -r '.[0].id' <<<"$output")
	run_ok runs
	[ "$(awk 'NR == 2 { print $1, $4, $5, $6, $7 }' <<<"$output")" = "$newest 0 3 0 succeeded" ] || fail "table row"
	run_ok runs -q
	[ "$(head -1 <<<"$output")" = "$newest" ]
}

@test "runs shows a run whose process died as aborted and lists overrides" {
	pipeline
	run_ok run --set train.lr=0.2
	sh -c 'exit 0' &
	dead=$!
	wait "$dead"
	rec=$(ls .cpipe/runs/*.json | head -1)
	jq --argjson pid "$dead" '.id = "29991231T000000000Z-dead" | .status = "running" | .pid = $pid | del(.ended)' \
		"$rec" > .cpipe/runs/29991231T000000000Z-dead.json
	run_ok runs
	[[ "$(sed -n 2p <<<"$output")" == 29991231T000000000Z-dead*aborted* ]] || fail "not aborted"
	[[ "$(sed -n 3p <<<"$output")" == *succeeded*train.lr=0.2* ]] || fail "overrides not shown"
}

@test "show latest --json prints the record; show resolves prefixes and latest~N" {
	pipeline
	run_ok run
	run_ok run --force
	ids=$(cpipe runs -q)
	latest=$(head -1 <<<"$ids") first=$(tail -1 <<<"$ids")
	run_ok show latest --json
	[ "$(jq -r .id <<<"$output")" = "$latest" ]
	[ "$(jq -r .schema <<<"$output")" = cpipe-run/1 ]
	[ "$(jq -c '[.stages[].name]' <<<"$output")" = '["prepare","train","evaluate"]' ]
	[ "$(jq '.stages[2].metrics["vol:/metrics.json"].values.accuracy' <<<"$output")" = 0.1 ]
	run_ok show latest~1 --json
	[ "$(jq -r .id <<<"$output")" = "$first" ]
	run_ok show "${latest:0:20}"
	assert_contains "run $latest"
	assert_contains "accuracy = 0.1"
	assert_contains "vol:/model/model.txt"
	[[ "$output" == *prepare*ran*train*ran*evaluate*ran* ]] || fail "stages in run order"
	run cpipe show latest~5
	[ "$status" -eq 2 ] || fail "a run that does not exist is bad usage"
}

@test "show says which run a skipped stage reused" {
	pipeline
	run_ok run
	first=$(cpipe runs -q)
	run_ok run
	run_ok show latest
	assert_contains "reused from run $first"
}

@test "lineage of the metrics file reaches the external input and names each stage" {
	pipeline
	run_ok run
	latest=$(cpipe runs -q | head -1)
	run_ok lineage vol:/metrics.json
	[[ "$(head -1 <<<"$output")" == vol:/metrics.json* ]] || fail "root line"
	assert_contains "stage evaluate  run $latest"
	assert_contains "stage train  run $latest"
	assert_contains "stage prepare  run $latest"
	assert_contains "vol:/model/model.txt"
	assert_contains "(inside vol:/model)"
	[[ "$output" == *"./src/raw.txt"*external* ]] || fail "external input not reached"
	run_ok lineage --json vol:/metrics.json
	[ "$(jq -r .produced_by.stage <<<"$output")" = evaluate ]
	[ "$(jq -c '[.. | .stage? // empty] | unique' <<<"$output")" = '["evaluate","prepare","train"]' ]
	# The scripts each command names are inputs too (code is an input).
	[ "$(jq -c '[.. | objects | select(has("produced_by") and .produced_by == null) | .artifact] | unique' <<<"$output")" = \
		'["./bin/evaluate.sh","./bin/prepare.sh","./bin/train.sh","./src/raw.txt"]' ]
	[ "$(jq -r '.. | objects | select(.artifact? == "./src/raw.txt") | .digest' <<<"$output")" = \
		"sha256:$(sha256sum src/raw.txt | cut -d' ' -f1)" ]
}

@test "lineage finds an artifact by a digest prefix" {
	pipeline
	run_ok run
	digest=$(jq -r '.stages.train.outputs["vol:/model"].digest' cpipe.lock)
	run_ok lineage "${digest:7:12}"
	[[ "$(head -1 <<<"$output")" == "vol:/model  ${digest:7:12}"* ]] || fail "root is the model"
	assert_contains "stage train"
	assert_contains "stage prepare"
	run_ok lineage --json "$digest"
	[ "$(jq -r .artifact <<<"$output")" = vol:/model ]
	run cpipe lineage "${digest:7:6}"
	[ "$status" -eq 2 ] || fail "a short prefix is refused"
	assert_contains "at least 12"
}

@test "lineage of an unknown artifact exits 2 naming the nearest" {
	pipeline
	run_ok run
	run cpipe lineage vol:/metric.json
	[ "$status" -eq 2 ] || fail "expected exit 2"
	assert_contains 'no artifact or digest "vol:/metric.json"'
	assert_contains '"vol:/metrics.json"'
}

@test "prov latest is PROV-JSON whose relations reference declared records" {
	pipeline
	run_ok run
	first=$(cpipe runs -q)
	run_ok prov latest
	doc=$output
	q() { jq -r "$1" <<<"$doc"; }
	[ "$(q '.prefix | has("cpipe") and has("run") and has("art")')" = true ]
	[ "$(q '[.activity[]["prov:label"]] | sort | join(",")')" = evaluate,prepare,train ]
	[ "$(q '[.activity[] | has("prov:startTime") and has("prov:endTime")] | all')" = true ]
	# Every relation points at something the document declares.
	[ "$(q '. as $d | [.used[] | ($d.entity[.["prov:entity"]] != null) and ($d.activity[.["prov:activity"]] != null)] | all')" = true ]
	[ "$(q '. as $d | [.wasGeneratedBy[] | ($d.entity[.["prov:entity"]] != null) and ($d.activity[.["prov:activity"]] != null)] | all')" = true ]
	[ "$(q '. as $d | [.wasAssociatedWith[] | ($d.agent[.["prov:agent"]] != null) and ($d.activity[.["prov:activity"]] != null)] | all')" = true ]
	[ "$(q '[.used, .wasGeneratedBy, .wasAssociatedWith] | map(length > 0) | all')" = true ]
	[ "$(q '[.agent[]["prov:type"]["$"]] | sort | join(",")')" = prov:Person,prov:SoftwareAgent ]
	# Identifiers are QNames with a declared prefix.
	[ "$(q '.prefix as $p | [(.entity, .activity, .agent) | keys[] | split(":") | ($p[.[0]] != null) and (.[1] | test("^[A-Za-z_][A-Za-z0-9._-]*$"))] | all')" = true ]
	metrics=$(jq -r '.stages.evaluate.metrics["vol:/metrics.json"].digest' cpipe.lock)
	[ "$(q ".entity[\"art:sha256-${metrics#sha256:}\"][\"prov:label\"]")" = vol:/metrics.json ]
	[ "$(q ".entity[\"art:sha256-${metrics#sha256:}\"][\"cpipe:digest\"]")" = "$metrics" ]
	# A run that reused everything has skipped activities saying from where.
	run_ok run
	run_ok prov latest
	[ "$(jq -r '[.activity[]["cpipe:status"]] | unique | join(",")' <<<"$output")" = skipped ]
	[ "$(jq -r '[.activity[]["cpipe:reusedFrom"]] | unique | join(",")' <<<"$output")" = "$first" ]
}

@test "metrics --diff latest~1 shows old, new and delta after a --set rerun" {
	pipeline
	run_ok run
	run_ok metrics
	assert_contains "evaluate  vol:/metrics.json"
	[[ "$output" == *accuracy*0.1* ]] || fail "accuracy shown"
	refute_contains "loss.train"
	run_ok metrics --all
	assert_contains "loss.train"
	run_ok run --set train.lr=0.25
	run_ok metrics --diff latest~1
	assert_contains "0.1 → 0.25"
	assert_contains "(+0.15)"
	run_ok metrics --diff latest~1 --json
	[ "$(jq -c '.metrics[] | select(.metric == "accuracy") | [.old, .new, .delta]' <<<"$output")" = "[0.1,0.25,0.15]" ]
	[ "$(jq -c '.metrics[] | select(.metric == "n") | .delta' <<<"$output")" = 0 ]
	[ "$(jq -r .against.run <<<"$output")" = "$(cpipe runs -q | tail -1)" ]
}

@test "metrics --diff HEAD compares with the cpipe.lock committed in git" {
	pipeline
	git init -q .
	run_ok run
	git add cpipe.yml cpipe.lock bin src
	git -c user.name=t -c user.email=t@example.com commit -qm baseline
	run_ok run --set train.lr=0.5
	run_ok metrics --diff HEAD --json
	[ "$(jq -r .against.rev <<<"$output")" = HEAD ]
	[ "$(jq -c '.metrics[] | select(.metric == "accuracy") | [.old, .new, .delta]' <<<"$output")" = "[0.1,0.5,0.4]" ]
	run_ok metrics --diff HEAD
	assert_contains "cpipe.lock at HEAD"
	assert_contains "0.1 → 0.5"
	# Runs record the commit they ran on, and whether the tree was dirty.
	head=$(git rev-parse --short=7 HEAD)
	echo "# edited" >> cpipe.yml
	run_ok run
	run_ok runs
	[[ "$(sed -n 2p <<<"$output")" == *" $head+dirty "* ]] || fail "dirty run"
	[[ "$(sed -n 3p <<<"$output")" == *" $head "*train.lr=0.5* ]] || fail "clean run"
	[[ "$(sed -n 4p <<<"$output")" == *" (unborn) "* ]] || fail "run before the first commit"
	# The last run restored the spec's outputs; the first run made them.
	run_ok lineage vol:/metrics.json
	assert_contains "stage evaluate  run $(cpipe runs -q | tail -1)  commit (unborn)"
	run cpipe metrics --diff no-such-rev
	[ "$status" -eq 2 ] || fail "an unknown baseline is bad usage"
	assert_contains "not a run"
}
