#!/bin/bash
# End-to-end checks of the catgif binary on the committed fixture:
# prepare, train (resume, determinism, Hogwild), evaluate, serve, infer.
# Run `make` first (it builds ./catgif and build/gifcheck); needs curl and
# jq. Talks only to 127.0.0.1. Ends with "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
CATGIF=${CATGIF:-$HERE/catgif}
GIFCHECK=${GIFCHECK:-$HERE/build/gifcheck}
FIXTURE=$HERE/fixture
DATASET=${DATASET:-/usr/share/datasets/fashion-mnist}
T=$(mktemp -d)
SERVE_PID=
cleanup() {
	[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; [ $# -gt 1 ] && sed 's/^/#   /' "$2" | head -20; }
# check NAME CMD...: passes when CMD succeeds.
check() { local name=$1; shift; if "$@" >"$T/out" 2>&1; then ok "$name"; else not_ok "$name" "$T/out"; fi; }
# expect_fail NAME CODE PATTERN CMD...: CMD exits CODE and its stderr matches PATTERN.
expect_fail() {
	local name=$1 code=$2 pattern=$3; shift 3
	"$@" >"$T/out" 2>&1
	local rc=$?
	if [ "$rc" -eq "$code" ] && grep -qE "$pattern" "$T/out"; then ok "$name"; else
		echo "exit $rc, expected $code and /$pattern/" >>"$T/out"; not_ok "$name" "$T/out"; fi
}

for tool in "$CATGIF" "$GIFCHECK"; do
	[ -x "$tool" ] || { echo "smoke.sh: $tool missing: run make first" >&2; exit 2; }
done

# --- prepare -----------------------------------------------------------------
check "prepare reads the fixture's IDX gz files" "$CATGIF" prepare --src "$FIXTURE" --out "$T/data"
check "prepare writes train.bin and test.bin" test -s "$T/data/train.bin" -a -s "$T/data/test.bin"
check "prepare --limit keeps the first N images" \
	sh -c "'$CATGIF' prepare --src '$FIXTURE' --out '$T/small' --limit 300 --test-limit 50 | grep -q 'train: 300 images'"

mkdir -p "$T/bad"
cp "$FIXTURE"/*.gz "$T/bad/"
head -c 300000 "$FIXTURE/train-images-idx3-ubyte.gz" >"$T/bad/train-images-idx3-ubyte.gz"
expect_fail "a truncated gz IDX file is named in a clear error (exit 2)" 2 \
	'train-images-idx3-ubyte.gz: (truncated|corrupt)' "$CATGIF" prepare --src "$T/bad" --out "$T/bad-out"
gzip -dc "$FIXTURE/train-images-idx3-ubyte.gz" | head -c 100000 >"$T/bad/train-images-idx3-ubyte"
rm "$T/bad/train-images-idx3-ubyte.gz"
expect_fail "a truncated plain IDX file says how many bytes are missing" 2 \
	'train-images-idx3-ubyte: truncated: expected 1568000 bytes of pixel data, found 99984' \
	"$CATGIF" prepare --src "$T/bad" --out "$T/bad-out"
cp "$FIXTURE/train-labels-idx1-ubyte.gz" "$T/bad/train-images-idx3-ubyte.gz"
rm "$T/bad/train-images-idx3-ubyte"
expect_fail "a labels file in place of images has a bad magic number" 2 'bad magic number 0x00000801' \
	"$CATGIF" prepare --src "$T/bad" --out "$T/bad-out"
expect_fail "a missing source directory is an input error" 2 'cannot open' \
	"$CATGIF" prepare --src "$T/nowhere" --out "$T/bad-out"
check "no output is left behind by a failed prepare" test ! -e "$T/bad-out/train.bin"

# --- train -------------------------------------------------------------------
CK=$T/model/catgif.ckpt
mkdir -p "$T/model"
check "train 1 epoch on the fixture writes a checkpoint" \
	sh -c "'$CATGIF' train --data '$T/data' --checkpoint '$CK' --epochs 1 > '$T/train1.log' && test -s '$CK'"
"$CATGIF" evaluate --data "$T/data" --checkpoint "$CK" --out "$T/m1.json" >/dev/null 2>&1
check "train again resumes at epoch 2" \
	sh -c "'$CATGIF' train --data '$T/data' --checkpoint '$CK' > '$T/train2.log' && grep -q 'resuming .* at epoch 1' '$T/train2.log' && grep -q '^epoch 2:' '$T/train2.log'"
"$CATGIF" evaluate --data "$T/data" --checkpoint "$CK" --out "$T/m2.json" >/dev/null 2>&1
acc1=$(jq .accuracy "$T/m1.json" 2>/dev/null || echo 0)
acc2=$(jq .accuracy "$T/m2.json" 2>/dev/null || echo 0)
check "resuming does not reset the model (test accuracy $acc1 -> $acc2)" \
	awk -v a="$acc1" -v b="$acc2" 'BEGIN { exit !(b > 0.6 && b >= a - 0.03) }'
tacc1=$(awk '/^epoch 1:/ { print $7 }' "$T/train1.log")
tacc2=$(awk '/^epoch 2:/ { print $7 }' "$T/train2.log")
check "epoch 2 train accuracy ($tacc2) is above epoch 1's ($tacc1)" \
	awk -v a="$tacc1" -v b="$tacc2" 'BEGIN { exit !(b > a) }'
expect_fail "resuming with another --hidden is refused" 2 'differs from the checkpoint' \
	"$CATGIF" train --data "$T/data" --checkpoint "$CK" --hidden 64

for run in a b; do
	"$CATGIF" train --data "$T/data" --checkpoint "$T/det-$run.ckpt" --epochs 2 --seed 7 >/dev/null 2>&1
done
check "two --procs 1 runs with the same seed give byte-identical checkpoints" cmp "$T/det-a.ckpt" "$T/det-b.ckpt"
"$CATGIF" train --data "$T/data" --checkpoint "$T/det-c.ckpt" --epochs 1 --seed 7 >/dev/null 2>&1
"$CATGIF" train --data "$T/data" --checkpoint "$T/det-c.ckpt" --epochs 1 >/dev/null 2>&1
check "2 epochs in one run equal 1 epoch plus a resumed epoch" cmp "$T/det-a.ckpt" "$T/det-c.ckpt"
"$CATGIF" train --data "$T/data" --checkpoint "$T/det-d.ckpt" --epochs 2 --seed 8 >/dev/null 2>&1
check "another seed gives another checkpoint" sh -c "! cmp -s '$T/det-a.ckpt' '$T/det-d.ckpt'"
check "--procs 2 (Hogwild) trains and checkpoints" \
	sh -c "'$CATGIF' train --data '$T/data' --checkpoint '$T/hog.ckpt' --epochs 2 --procs 2 | grep -q 'procs 2' && '$CATGIF' evaluate --data '$T/data' --checkpoint '$T/hog.ckpt' --out '$T/hog.json' >/dev/null && jq -e '.accuracy > 0.6' '$T/hog.json'"
check "--arch mlp trains too" \
	"$CATGIF" train --data "$T/data" --checkpoint "$T/mlp.ckpt" --arch mlp --hidden 32
cp "$CK" "$T/corrupt.ckpt"
printf 'XXXX' | dd of="$T/corrupt.ckpt" bs=1 seek=5000 conv=notrunc 2>/dev/null
expect_fail "a corrupted checkpoint fails its checksum (exit 2)" 2 'checksum mismatch' \
	"$CATGIF" evaluate --data "$T/data" --checkpoint "$T/corrupt.ckpt" --out "$T/x.json"
head -c 1000 "$CK" >"$T/short.ckpt"
expect_fail "a truncated checkpoint is reported as truncated" 2 'truncated' \
	"$CATGIF" train --data "$T/data" --checkpoint "$T/short.ckpt"
expect_fail "a non-checkpoint file is refused" 2 'not a catgif checkpoint' \
	"$CATGIF" train --data "$T/data" --checkpoint "$T/data/test.bin"
expect_fail "bad option values are usage errors" 2 'lr' \
	"$CATGIF" train --data "$T/data" --checkpoint "$T/x.ckpt" --lr abc

# --- evaluate ----------------------------------------------------------------
M=$T/metrics.json
check "evaluate writes the metrics" "$CATGIF" evaluate --data "$T/data" --checkpoint "$CK" --out "$M"
check "metrics: accuracy, 500 test images, epoch 2" \
	jq -e '(.accuracy > 0.6) and (.test_images == 500) and (.checkpoint_epoch == 2)' "$M"
check "metrics: per-class accuracy keyed by class name" \
	jq -e '(.per_class_accuracy | keys | length == 10) and (.per_class_accuracy["Ankle boot"] >= 0)' "$M"
check "metrics: 10x10 confusion matrix summing to the test images" \
	jq -e '(.confusion_matrix | length == 10) and ([.confusion_matrix[][]] | add == 500) and all(.confusion_matrix[]; length == 10)' "$M"
check "metrics: checkpoint_sha256 is the checkpoint's digest" \
	test "$(jq -r .checkpoint_sha256 "$M")" = "$(sha256sum "$CK" | cut -d' ' -f1)"

# --- serve -------------------------------------------------------------------
"$CATGIF" serve --checkpoint "$CK" --metrics "$M" --host 127.0.0.1 --port 0 --threads 2 >"$T/serve.log" 2>&1 &
SERVE_PID=$!
PORT=
for _ in $(seq 50); do
	PORT=$(sed -n 's/.* port \([0-9]*\),.*/\1/p' "$T/serve.log")
	[ -n "$PORT" ] && break
	sleep 0.1
done
URL=http://127.0.0.1:$PORT
check "serve listens on a free port" test -n "$PORT"
# req NAME STATUS CURL-ARGS...: the request answers STATUS (body in $T/body).
req() {
	local name=$1 want=$2; shift 2
	local got
	got=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 10 "$@")
	if [ "$got" = "$want" ]; then ok "$name"; else echo "HTTP $got, expected $want" >"$T/out"; cat "$T/body" >>"$T/out" 2>/dev/null; not_ok "$name" "$T/out"; fi
}
req "GET /healthz is 200" 200 "$URL/healthz"
check "/healthz says ok" jq -e '.status == "ok"' "$T/body"
req "GET /info is 200" 200 "$URL/info"
check "/info: digest, epoch, hidden size, accuracy from the metrics" \
	jq -e --arg sha "$(sha256sum "$CK" | cut -d' ' -f1)" --argjson acc "$(jq .accuracy "$M")" \
	'.checkpoint_sha256 == $sha and .epoch == 2 and .hidden == 128 and .accuracy == $acc and .metrics_match_checkpoint' "$T/body"

# Test image 0 of the fixture as PGM and JSON.
skip=$((24 + 0 * 784))
{ printf 'P5\n# a comment\n28 28\n255\n'; dd if="$T/data/test.bin" bs=1 skip=$skip count=784 2>/dev/null; } >"$T/img.pgm"
dd if="$T/data/test.bin" bs=1 skip=$skip count=784 2>/dev/null | od -An -v -tu1 | tr -s ' \n' ',,' |
	sed 's/^,//; s/,$//; s/^/[/; s/$/]/' >"$T/img.json"
req "POST /predict with a PGM is 200" 200 -H 'Content-Type: image/x-portable-graymap' --data-binary @"$T/img.pgm" "$URL/predict"
check "PGM prediction has label, class, 10 probabilities" \
	jq -e '(.label | type == "number") and (.class | type == "string") and (.probabilities | length == 10) and .format == "pgm"' "$T/body"
cp "$T/body" "$T/pred-pgm.json"
req "POST /predict with a JSON array is 200" 200 -H 'Content-Type: application/json' --data-binary @"$T/img.json" "$URL/predict"
check "JSON and PGM of one image predict the same" \
	test "$(jq -c .probabilities "$T/body")" = "$(jq -c .probabilities "$T/pred-pgm.json")"
req "POST /predict with {\"pixels\": [...]} is 200" 200 --data-binary "{\"pixels\": $(cat "$T/img.json")}" "$URL/predict"
req "POST /predict sniffs a PGM without Content-Type" 200 -H 'Content-Type:' --data-binary @"$T/img.pgm" "$URL/predict"

# Malformed, wrong-size and oversized bodies.
req "garbage is 415" 415 --data-binary 'hello' "$URL/predict"
check "errors are JSON {\"error\": ...}" jq -e '.error | type == "string"' "$T/body"
req "an empty body is 400" 400 -X POST "$URL/predict"
head -c 500 "$T/img.pgm" >"$T/short.pgm"
req "a truncated PGM is 400" 400 --data-binary @"$T/short.pgm" "$URL/predict"
{ printf 'P5\n28 27\n255\n'; head -c 756 /dev/zero; } >"$T/wrong.pgm"
req "a 28x27 PGM is 422" 422 --data-binary @"$T/wrong.pgm" "$URL/predict"
req "a bad GIF is 400" 400 -H 'Content-Type: image/gif' --data-binary 'GIF89a\x1c\x00garbage' "$URL/predict"
req "a GIF content type on a non-GIF is 400" 400 -H 'Content-Type: image/gif' --data-binary 'hello' "$URL/predict"
req "a JSON array of 3 numbers is 422" 422 --data-binary '[1,2,3]' "$URL/predict"
req "malformed JSON is 400" 400 -H 'Content-Type: application/json' --data-binary '[1,2' "$URL/predict"
sed 's/^\[[0-9]*,/[300,/' "$T/img.json" >"$T/bad.json"
req "a JSON value out of 0..255 is 400" 400 --data-binary @"$T/bad.json" "$URL/predict"
head -c 2000000 /dev/zero >"$T/big"
req "a 2 MB body is 413" 413 --data-binary @"$T/big" "$URL/predict"
req "a 2 MB chunked body is 413" 413 -H 'Transfer-Encoding: chunked' --data-binary @"$T/big" "$URL/predict"
req "GET /predict is 405" 405 "$URL/predict"
req "POST /healthz is 405" 405 -X POST "$URL/healthz"
req "an unknown path is 404" 404 "$URL/nope"
req "the server is still up after bad requests" 200 "$URL/healthz"

# --- many idle connections ---------------------------------------------------
# 2000 connections that never send a byte: /healthz still answers at once,
# and the server closes them after --idle-timeout.
"$CATGIF" serve --checkpoint "$CK" --host 127.0.0.1 --port 0 --threads 2 --idle-timeout 2 >"$T/idle.log" 2>&1 &
IDLE_PID=$!
IDLE_PORT=
for _ in $(seq 50); do
	IDLE_PORT=$(sed -n 's/.* port \([0-9]*\),.*/\1/p' "$T/idle.log")
	[ -n "$IDLE_PORT" ] && break
	sleep 0.1
done
cat >"$T/idle.py" <<'EOF'
import resource, socket, subprocess, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 256), hard))
conns = []
for _ in range(n):
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    conns.append(c)
time.sleep(0.5)
t0 = time.time()
code = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
                       "http://127.0.0.1:%d/healthz" % port], capture_output=True, text=True).stdout
print("healthz %s in %.2f s with %d idle connections" % (code, time.time() - t0, n))
if code != "200":
    sys.exit(1)
deadline = time.time() + 10
for c in conns:
    c.settimeout(max(0.1, deadline - time.time()))
    try:
        if c.recv(1) != b"":
            sys.exit("an idle connection got data")
    except socket.timeout:
        sys.exit("an idle connection was not closed after the idle timeout")
    except ConnectionResetError:
        pass
print("all %d idle connections closed by the server" % n)
EOF
check "with 2000 idle connections /healthz answers and they are closed after the idle timeout" \
	python3 "$T/idle.py" "$IDLE_PORT" 2000
kill -TERM "$IDLE_PID"
wait "$IDLE_PID"

# --- infer -------------------------------------------------------------------
check "infer writes 5 predictions (PGM requests)" \
	"$CATGIF" infer --data "$T/data" --url "$URL" --out "$T/infer" --count 5 --seed 1
check "infer wrote 5 GIFs and predictions.json" \
	sh -c "test \$(ls '$T/infer' | grep -c '^[0-9][0-9]-.*\.gif\$') -eq 5 && test -s '$T/infer/predictions.json'"
check "every GIF decodes with giflib at 224x224" \
	sh -c "'$GIFCHECK' '$T'/infer/*.gif | awk '\$2 != \"224x224\" { exit 1 }'"
check "GIF names match predictions.json" \
	bash -c "jq -r '.predictions[].file' '$T/infer/predictions.json' | sort | diff - <(ls '$T/infer' | grep gif\$)"
check "each file name carries its true and predicted class" \
	jq -e 'all(.predictions[]; . as $p | $p.file == ("0" + ($p.index | tostring)) + "-true-" + ($p.true_class | ascii_downcase | gsub("[^a-z]+"; "-")) + "-pred-" + ($p.class | ascii_downcase | gsub("[^a-z]+"; "-")) + ".gif")' "$T/infer/predictions.json"
check "predictions.json has true labels and probabilities" \
	jq -e '(.predictions | length == 5) and all(.predictions[]; (.true_class | type == "string") and .probability > 0 and .probability <= 1)' "$T/infer/predictions.json"
check "infer sends GIF requests the server decodes" \
	bash -c "'$CATGIF' infer --data '$T/data' --url '$URL' --out '$T/infer-gif' --format gif >/dev/null && grep -q '200 gif' '$T/serve.log' && cmp <(jq -c '[.predictions[].label]' '$T/infer/predictions.json') <(jq -c '[.predictions[].label]' '$T/infer-gif/predictions.json')"
check "infer sends JSON requests too" \
	"$CATGIF" infer --data "$T/data" --url "$URL" --out "$T/infer-json" --format json
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"
rc=$?
SERVE_PID=
check "SIGTERM stops serve with exit 0 (was $rc)" test "$rc" -eq 0
expect_fail "infer without a server fails clearly" 1 'not healthy after 1 s' \
	"$CATGIF" infer --data "$T/data" --url "$URL" --out "$T/infer2" --wait 1

# --- fixture -----------------------------------------------------------------
if [ -r "$DATASET/train-images-idx3-ubyte.gz" ]; then
	check "mkfixture rebuilds the committed fixture byte for byte" \
		sh -c "'$CATGIF' mkfixture --src '$DATASET' --out '$T/fx' >/dev/null && cmp '$T/fx/train-images-idx3-ubyte.gz' '$FIXTURE/train-images-idx3-ubyte.gz' && cmp '$T/fx/t10k-labels-idx1-ubyte.gz' '$FIXTURE/t10k-labels-idx1-ubyte.gz'"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
