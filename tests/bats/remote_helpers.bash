# Shared by the remote suites: real servers on loopback (tests/remote-servers:
# nginx WebDAV and s3rver) for the whole file, a fresh remote prefix per
# test, and a "fresh clone" of the project (only what git would hold).

remote_servers_start() {
	SERVERS="$BATS_FILE_TMPDIR/servers"
	mkdir -p "$SERVERS"
	"$BATS_TEST_DIRNAME/../remote-servers" start "$SERVERS" >&3 2>&1 || return 1
	# shellcheck disable=SC1091
	. "$SERVERS/env"
	export SERVERS NGINX_PORT S3_PORT REMOTE_TOKEN
}

remote_servers_stop() {
	"$BATS_TEST_DIRNAME/../remote-servers" stop "$BATS_FILE_TMPDIR/servers"
}

# A remote of kind $1 (dir, http, s3) that no other test uses.
remote_url() {
	case $1 in
	dir) echo "$BATS_TEST_TMPDIR/remote-dir" ;;
	http) echo "http://127.0.0.1:$NGINX_PORT/t$BATS_TEST_NUMBER" ;;
	s3) echo "s3://cpipe-test/t$BATS_TEST_NUMBER" ;;
	esac
}

# Where the remote of kind $1 keeps the blob $2 ("cas/<hex>") on disk.
remote_file() {
	case $1 in
	dir) echo "$BATS_TEST_TMPDIR/remote-dir/$2" ;;
	http) echo "$SERVERS/www/t$BATS_TEST_NUMBER/$2" ;;
	s3) echo "$SERVERS/s3/cpipe-test/t$BATS_TEST_NUMBER/$2._S3rver_object" ;;
	esac
}

s3_env() {
	export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
	export AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" AWS_REGION=us-east-1
}

# A teammate's fresh clone of the project: the files git would hold
# (the spec, its scripts, cpipe.lock), none of .cpipe. Moves into it.
fresh_clone() {
	local src=$PROJ
	PROJ="$BATS_TEST_TMPDIR/clone${1:-}"
	mkdir -p "$PROJ"
	(cd "$src" && cp -r cpipe.yml cpipe.lock bin "$PROJ/")
	mkdir -p "$PROJ/ledger"
	cd "$PROJ" || return 1
}

# Every object in the store is named by the sha256 of its bytes.
objects_sound() {
	local f name
	while IFS= read -r f; do
		name=$(basename "$(dirname "$f")")$(basename "$f")
		[ "$(sha256sum < "$f" | cut -d' ' -f1)" = "$name" ] || { echo "torn object $f"; return 1; }
	done < <(find .cpipe/store/objects -type f)
}
