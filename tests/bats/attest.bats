#!/usr/bin/env bats
# cpipe attest: a DSSE envelope (Ed25519, made with OpenSSL) holding an
# in-toto Statement v1 with a SLSA provenance v1 predicate for a run's
# outputs; --verify checks the signature and the subjects on disk, and a
# tampered file or envelope is rejected with exit 1.

load helpers

pipeline() {
	mkdir -p bin src
	echo "raw data" > src/raw.txt
	cat > bin/train.sh <<'EOS'
mkdir -p /vol/model && { cat /src/raw.txt; echo "lr=$LR"; } > /vol/model/weights.txt
printf '{"accuracy": %s}\n' "$LR" > /vol/metrics.json
EOS
	spec <<'EOS'
volumes:
  vol: {}
stages:
  train:
    command: sh /app/train.sh ${API_TOKEN:-tok-s3cr3t-value}
    volumes: [vol:/vol, ./bin:/app:ro, ./src:/src:ro]
    params: {lr: 0.1}
    environment: {LR: "${params.lr}", API_TOKEN: "${API_TOKEN:-tok-s3cr3t-value}"}
    inputs: [./src/raw.txt]
    outputs: [vol:/model]
    metrics: [vol:/metrics.json]
EOS
	openssl genpkey -algorithm ed25519 -out key.pem 2>/dev/null
	openssl pkey -in key.pem -pubout -out pub.pem
}

payload() {
	jq -r .payload "$1" | base64 -d
}

@test "attest writes a signed in-toto SLSA statement whose subjects are the run's outputs" {
	pipeline
	git init -q . && git add cpipe.yml bin src && git -c user.name=t -c user.email=t@t commit -qm spec
	commit=$(git rev-parse HEAD)
	run_ok -q run --set train.lr=0.2 --name trial
	id=$(cpipe runs -q)
	run_ok attest "$id" --key key.pem -o att.json
	[ -f att.json ] || fail "no envelope written"
	[ "$(jq -r .payloadType att.json)" = application/vnd.in-toto+json ]
	[ "$(jq '.signatures | length' att.json)" = 1 ]
	st=$(payload att.json)
	q() { jq -r "$1" <<<"$st"; }
	[ "$(q ._type)" = https://in-toto.io/Statement/v1 ]
	[ "$(q .predicateType)" = https://slsa.dev/provenance/v1 ]
	[ "$(q '[.subject[].name] | sort | join(",")')" = "vol:/metrics.json,vol:/model" ]
	want=$(sha256sum < .cpipe/volumes/vol/metrics.json | cut -d' ' -f1)
	[ "$(q '.subject[] | select(.name == "vol:/metrics.json") | .digest.sha256')" = "$want" ]
	rec=.cpipe/runs/$id.json
	[ "$(q '.subject[] | select(.name == "vol:/model") | .digest.sha256')" = \
		"$(jq -r '.stages[0].outputs["vol:/model"].digest | ltrimstr("sha256:")' "$rec")" ]
	b=.predicate.buildDefinition
	[ "$(q "$b.externalParameters.overrides[\"train.lr\"]")" = 0.2 ]
	[ "$(q "$b.externalParameters.stages.train.params.lr")" = 0.2 ]
	[ "$(q "$b.externalParameters.name")" = trial ]
	[ "$(q "$b.resolvedDependencies[] | select(.digest.gitCommit) | .digest.gitCommit")" = "$commit" ]
	[ "$(q "$b.resolvedDependencies[] | select(.name == \"./src/raw.txt\") | .digest.sha256")" = \
		"$(sha256sum < src/raw.txt | cut -d' ' -f1)" ]
	[ "$(q '.predicate.runDetails.metadata.invocationId')" = "$id" ]
	[[ "$(q '.predicate.runDetails.builder.id')" == https://* ]] || fail "builder id is no URI"
	# No secret value reaches the envelope, though the command holds one.
	[ "$(q "$b.externalParameters.stages.train.command | length")" = 3 ] || fail "command not attested"
	[[ "$st" != *tok-s3cr3t-value* ]] || fail "the token reached the statement"
	! grep -q "tok-s3cr3t-value" att.json || fail "the token reached the envelope"
	# The signature is Ed25519 over the DSSE PAE, as openssl itself checks it.
	payload att.json > body
	printf 'DSSEv1 %d %s %d ' 28 application/vnd.in-toto+json "$(stat -c %s body)" > pae
	cat body >> pae
	jq -r '.signatures[0].sig' att.json | base64 -d > sig
	openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in pae -sigfile sig >/dev/null ||
		fail "openssl does not verify the signature over the PAE"
	run_ok attest --verify att.json --pub pub.pem
	assert_contains "2 subjects match the files on disk"
	# Without -o the envelope goes to stdout; CPIPE_SIGNING_KEY holds the PEM or its path.
	CPIPE_SIGNING_KEY="$(cat key.pem)" run cpipe attest trial
	[ "$status" -eq 0 ] || fail "CPIPE_SIGNING_KEY as PEM: exit $status"
	[ "$(jq -r .payloadType <<<"$output")" = application/vnd.in-toto+json ]
	CPIPE_SIGNING_KEY=$PWD/key.pem run cpipe attest latest -o att2.json
	[ "$status" -eq 0 ] || fail "CPIPE_SIGNING_KEY as a path: exit $status"
	run_ok attest --verify att2.json --pub pub.pem
}

@test "attest --verify rejects a tampered file, a tampered envelope and another key with exit 1" {
	pipeline
	run_ok -q run
	run_ok attest latest --key key.pem -o att.json
	run_ok attest --verify att.json --pub pub.pem

	# An output changed on disk after the attestation.
	cp .cpipe/volumes/vol/metrics.json metrics.bak
	echo '{"accuracy": 0.99}' > .cpipe/volumes/vol/metrics.json
	run cpipe attest --verify att.json --pub pub.pem
	[ "$status" -eq 1 ] || fail "a tampered output: exit $status"
	assert_contains "vol:/metrics.json is sha256:"
	assert_contains "1 of 2 subjects do not match"
	cp metrics.bak .cpipe/volumes/vol/metrics.json
	echo tampered >> .cpipe/volumes/vol/model/weights.txt
	run cpipe attest --verify att.json --pub pub.pem
	[ "$status" -eq 1 ] || fail "a tampered file in an output directory: exit $status"
	assert_contains "vol:/model is sha256:"
	run_ok -q run # restores the model from the store
	run_ok attest --verify att.json --pub pub.pem

	# The payload edited (a subject's digest swapped), signature kept.
	forged=$(payload att.json | jq -c '.subject[0].digest.sha256 = "'"$(printf '0%.0s' {1..64})"'"' | base64 -w0)
	jq --arg p "$forged" '.payload = $p' att.json > forged.json
	run cpipe attest --verify forged.json --pub pub.pem
	[ "$status" -eq 1 ] || fail "a tampered payload: exit $status"
	assert_contains "no signature verifies"
	# The signature itself altered.
	sig=$(jq -r '.signatures[0].sig' att.json)
	flipped=$( (echo "$sig" | base64 -d | head -c 63; printf '\x00') | base64 -w0)
	jq --arg s "$flipped" '.signatures[0].sig = $s' att.json > badsig.json
	run cpipe attest --verify badsig.json --pub pub.pem
	[ "$status" -eq 1 ] || fail "a tampered signature: exit $status"
	# The payloadType changed, and something that is no envelope at all.
	jq '.payloadType = "application/json"' att.json > type.json
	run cpipe attest --verify type.json --pub pub.pem
	[ "$status" -eq 1 ] || fail "another payloadType: exit $status"
	echo '{"hello": 1}' > notenv.json
	run cpipe attest --verify notenv.json --pub pub.pem
	[ "$status" -eq 1 ] || fail "no envelope: exit $status"
	# Another signer's key.
	openssl genpkey -algorithm ed25519 -out other.pem 2>/dev/null
	openssl pkey -in other.pem -pubout -out otherpub.pem
	run cpipe attest --verify att.json --pub otherpub.pem
	[ "$status" -eq 1 ] || fail "another key: exit $status"
	assert_contains "no signature verifies"
}

@test "attest refuses missing or wrong keys and failed runs before writing anything" {
	pipeline
	run_ok -q run
	run env -u CPIPE_SIGNING_KEY "$CPIPE_BIN" attest latest -o att.json
	[ "$status" -eq 2 ] || fail "no key: exit $status"
	assert_contains "openssl genpkey -algorithm ed25519"
	openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:1024 -out rsa.pem 2>/dev/null
	run cpipe attest latest --key rsa.pem -o att.json
	[ "$status" -eq 2 ] || fail "an RSA key: exit $status"
	assert_contains "another algorithm"
	openssl genpkey -algorithm ed25519 -aes-128-cbc -pass pass:pw -out enc.pem 2>/dev/null
	run cpipe attest latest --key enc.pem -o att.json
	[ "$status" -eq 2 ] || fail "an encrypted key: exit $status"
	run cpipe attest latest --key nosuch.pem -o att.json
	[ "$status" -eq 2 ] || fail "a missing key file: exit $status"
	[ ! -e att.json ] || fail "a refused attest wrote its output"
	[ -z "$(ls -A | grep -v -e '^cpipe\.' -e '^\.cpipe$' -e bin -e src -e '\.pem$')" ] || fail "left files: $(ls -A)"
	run cpipe attest --verify att.json
	[ "$status" -eq 2 ] || fail "--verify without --pub: exit $status"
	echo 'exit 3' > bin/train.sh
	run cpipe run --force
	run cpipe attest latest --key key.pem
	[ "$status" -eq 2 ] || fail "a failed run: exit $status"
	assert_contains "only a run that succeeded is attested"
}

@test "attest --verify reads nothing outside the project and its volumes for a subject" {
	pipeline
	run_ok -q run
	run_ok attest latest --key key.pem -o att.json
	# A validly signed statement (the key is ours) naming paths outside.
	body=$(payload att.json | jq -c '.subject += [{"name": "/etc/passwd", "digest": {"sha256": "00"}},
		{"name": "nosuchvol:/x", "digest": {"sha256": "00"}}]')
	printf '%s' "$body" > body
	printf 'DSSEv1 %d %s %d ' 28 application/vnd.in-toto+json "$(stat -c %s body)" > pae
	cat body >> pae
	openssl pkeyutl -sign -inkey key.pem -rawin -in pae -out sig
	jq --arg p "$(base64 -w0 < body)" --arg s "$(base64 -w0 < sig)" \
		'.payload = $p | .signatures[0].sig = $s' att.json > outside.json
	run cpipe attest --verify outside.json --pub pub.pem
	[ "$status" -eq 1 ] || fail "exit $status"
	assert_contains "/etc/passwd: not checked"
	assert_contains 'nosuchvol:/x: not checked: the spec declares no volume "nosuchvol"'
	assert_contains "2 of 4 subjects do not match"
}
