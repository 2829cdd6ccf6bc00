#!/usr/bin/env bats
# cpipe report: one run as a self-contained HTML page, loaded in a real
# browser (Debian's chromium, headless): the DOM it builds holds the stages,
# the metrics and catgif's labelled images, and a screenshot of it is not
# blank.

load helpers

EXAMPLE="$BATS_TEST_DIRNAME/../../examples/catgif"

setup_file() {
	make -s -C "$EXAMPLE" > /dev/null
	cc -std=c11 -O2 -o "$BATS_FILE_TMPDIR/pngcolours" "$BATS_TEST_DIRNAME/pngcolours.c" -lz
}

# Headless Chromium with its own profile, bounded in time. As root it needs
# --no-sandbox.
chrome() {
	local profile
	profile=$(mktemp -d "$BATS_TEST_TMPDIR/chrome.XXXXXX")
	timeout 90 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
		--user-data-dir="$profile" "$@" 2> "$BATS_TEST_TMPDIR/chrome.log"
}

catgif_project() {
	PROJ="$BATS_TEST_TMPDIR/catgif"
	mkdir -p "$PROJ"
	cp -r "$EXAMPLE"/{cpipe.yml,Makefile,src,fixture,catgif} "$PROJ"/
	cd "$PROJ" || return 1
	export CATGIF_DATA=./fixture
	CATGIF_PORT=$((20000 + RANDOM % 20000))
	export CATGIF_PORT
}

@test "report of a catgif run: Chromium shows the stages, metrics across runs and the five labelled images" {
	catgif_project
	cpipe run > /dev/null 2>&1 || fail "first run failed"
	cpipe run --force train evaluate infer > /dev/null 2>&1 || fail "second run failed"
	run cpipe report -o "$PROJ/report.html"
	[ "$status" -eq 0 ] || fail "report failed"
	assert_contains "$PROJ/report.html"
	# Self-contained: nothing to fetch, no script.
	! grep -Eq '<script|(src|href)="https?:|url\((https?:|//)|@import|@font-face' report.html || fail "page refers outside itself"
	chrome --dump-dom "file://$PROJ/report.html" > dom.html || fail "chromium --dump-dom failed: $(cat "$BATS_TEST_TMPDIR/chrome.log")"
	run cat dom.html
	tr -d '\n' < dom.html > flat.html
	latest=$(cpipe runs -q | head -1)
	assert_contains "id=\"run-id\" class=\"mono\">$latest<"
	for s in prepare train evaluate serve infer; do
		grep -q "data-stage=\"$s\"" dom.html || fail "stage $s not in the graph"
	done
	grep -q 'data-stage="evaluate" data-status="ran"' dom.html || fail "evaluate not shown as ran"
	grep -q 'data-stage="prepare" data-status="skipped"' dom.html || fail "prepare not shown as skipped"
	acc=$(jq -r '.accuracy' "$PROJ/.cpipe/volumes/catgif/metrics.json")
	grep -Eq "<tr data-metric=\"accuracy\"><th>accuracy</th><td class=\"mono\">$acc</td>" dom.html ||
		fail "accuracy $acc not in the metrics table"
	# train resumed for a second epoch: the accuracy chart has a point per
	# run; the per-class accuracy (a map) is drawn as ten bars.
	grep -o '<figure class="chart" data-chart="accuracy">.*' flat.html | sed 's,</figure>.*,,' |
		grep -o '<circle' | wc -l | grep -qx 2 || fail "accuracy chart lacks its two points"
	grep -o '<figure class="chart" data-chart="per_class_accuracy">.*' flat.html | sed 's,</figure>.*,,' |
		grep -o '<rect' | wc -l | grep -qx 10 || fail "per-class bars"
	# The five images infer wrote, each with its predicted and true label.
	preds="$PROJ/.cpipe/volumes/catgif/results/predictions.json"
	[ "$(grep -c '<figure class="image' dom.html)" -eq 5 ] || fail "expected 5 images"
	for i in 0 1 2 3 4; do
		file=$(jq -r ".predictions[$i].file" "$preds")
		class=$(jq -r ".predictions[$i].class" "$preds" | sed 's,/,\\/,g')
		truth=$(jq -r ".predictions[$i].true_class" "$preds" | sed 's,/,\\/,g')
		grep -o "data-file=\"$file\".*" flat.html | sed 's,</figure>.*,,' > fig.html
		grep -q 'src="data:image/gif;base64,R0lGOD' fig.html || fail "$file not embedded as a GIF"
		grep -q "predicted $class" fig.html || fail "$file: predicted $class missing"
		grep -q "true $truth" fig.html || fail "$file: true $truth missing"
	done
	grep -q "data-artifact=\"catgif:/results\"" dom.html || fail "outputs table"
	grep -q "$(jq -r '.stages.infer.outputs["catgif:/results"].digest' cpipe.lock)" dom.html || fail "digest of the results"
	grep -q 'data-log="infer"' dom.html || fail "infer's log tail"
	grep -q "correct -&gt; /catgif/results/predictions.json" dom.html || fail "infer's log text"
	# The page as drawn: a screenshot with more than a handful of colours.
	chrome --window-size=1200,2000 --screenshot="$PROJ/shot.png" "file://$PROJ/report.html" > /dev/null ||
		fail "chromium --screenshot failed: $(cat "$BATS_TEST_TMPDIR/chrome.log")"
	file shot.png | grep -q 'PNG image data, 1200 x 2000' || fail "screenshot: $(file shot.png)"
	read -r dims colours nonwhite < <("$BATS_FILE_TMPDIR/pngcolours" shot.png)
	[ "$dims" = 1200x2000 ] && [ "$colours" -gt 100 ] && [ "$nonwhite" -gt 100000 ] ||
		fail "screenshot looks blank: $dims, $colours colours, $nonwhite non-white pixels"
}

@test "report of a bad run: exit 2, a clear message, nothing written" {
	spec <<'EOF'
stages:
  a:
    command: "true"
EOF
	cpipe run > /dev/null 2>&1
	run cpipe report nosuchrun -o out.html
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains 'no run "nosuchrun"'
	[ ! -e out.html ] || fail "a page was written"
	run cpipe report a b
	[ "$status" -eq 2 ] || fail "two runs: exit $status"
}

@test "report without -o goes under .cpipe/reports; -o - prints it; no secret reaches the page" {
	cat > score.sh <<'EOF'
mkdir -p /w
echo "scoring with $1"
printf '{"acc": %s, "note": "%s", "per_class": {"cat": 0.5, "dog": 1}}\n' "$2" "$1" > /w/m.json
EOF
	spec <<'EOF'
volumes:
  w: {}
stages:
  score:
    command: sh /p/score.sh ${HOST_API_TOKEN} ${params.acc}
    params: {acc: 0.75}
    volumes: ["w:/w", "./score.sh:/p/score.sh:ro"]
    metrics: [w:/m.json]
EOF
	export HOST_API_TOKEN=tok-report-9f8e7d6c
	cpipe run > /dev/null 2>&1 || fail "run failed"
	cpipe run --set score.acc=0.8 > /dev/null 2>&1 || fail "second run failed"
	id=$(cpipe runs -q | head -1)
	run cpipe report
	[ "$status" -eq 0 ] || fail "report failed"
	[ "$output" = "$PROJ/.cpipe/reports/$id.html" ] || fail "printed $output"
	[ -s ".cpipe/reports/$id.html" ] || fail "no page"
	! ls .cpipe/reports | grep -q tmp || fail "temporary left behind"
	run cpipe report -o - "$id"
	[ "$status" -eq 0 ] || fail "report -o - failed"
	assert_contains '<!DOCTYPE html>'
	assert_contains 'data-chart="per_class"'
	assert_contains 'data-chart="acc"'
	assert_contains '<tr class="over" title="--set"><td>score</td><td>acc</td><td class="mono">0.8 (--set)'
	! grep -rq tok-report ".cpipe/reports" || fail "the token reached the page"
	refute_contains tok-report
	assert_contains 'scoring with &lt;redacted&gt;'
	assert_contains '<tr data-metric="note"><th>note</th><td class="mono">&lt;redacted&gt;'
}
