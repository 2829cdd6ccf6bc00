#!/usr/bin/env bats
# Jobs and services inferred as compose means them, for files that never
# say `service:`: what config --explain and config --json show, and that
# such files run to completion instead of waiting forever on a server.

load helpers

EXAMPLE="$BATS_TEST_DIRNAME/../../examples/catgif"

compose() {
	cat > "$PROJ/compose.yaml"
}

# "NAME: job|service" for stage $1 from config --explain.
role() {
	cpipe config --explain 2>/dev/null | sed -n "s/^$1: \([a-z]*\):.*/\1/p"
}

# The condition cpipe gives the dependency of $1 on $2.
condition() {
	cpipe config --json 2>/dev/null | jq -r ".stages[\"$1\"].depends_on[\"$2\"].condition"
}

@test "a stage another waits for with service_started or service_healthy is a service" {
	compose <<'EOF'
services:
  db: {image: postgres}
  cache: {image: redis, command: redis-server}
  app:
    image: app
    command: run
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_started}
EOF
	[ "$(role db)" = service ] || fail "db: $(role db)"
	[ "$(role cache)" = service ] || fail "cache: $(role cache)"
	[ "$(role app)" = job ] || fail "app: $(role app)"
	run cpipe config --explain
	assert_contains 'db: service: stage "app" depends on it with service_healthy'
	run cpipe config
	assert_contains "service: true"
	assert_contains "service: false"
	[ "$(cpipe config --json | jq '.stages.app.service')" = false ]
}

@test "a healthcheck makes a service, a disabled one does not" {
	compose <<'EOF'
services:
  api:
    image: api
    command: serve
    healthcheck: {test: ["CMD", "true"], interval: 1s}
  batch:
    image: api
    command: batch
    healthcheck: {disable: true}
  none:
    image: api
    command: batch
    healthcheck: {test: ["NONE"]}
EOF
	[ "$(role api)" = service ] || fail "api: $(role api)"
	[ "$(role batch)" = job ] || fail "batch: $(role batch)"
	[ "$(role none)" = job ] || fail "none: $(role none)"
}

@test "restart: always and unless-stopped make services; on-failure and an unquoted no do not" {
	compose <<'EOF'
services:
  a: {image: x, command: a, restart: always}
  b: {image: x, command: b, restart: unless-stopped}
  c: {image: x, command: c, restart: on-failure}
  d: {image: x, command: d, restart: no}
  e: {image: x, command: e, restart: "on-failure:3"}
EOF
	[ "$(role a)" = service ] || fail "a: $(role a)"
	[ "$(role b)" = service ] || fail "b: $(role b)"
	[ "$(role c)" = job ] || fail "c: $(role c)"
	[ "$(role d)" = job ] || fail "d: $(role d)"
	[ "$(role e)" = job ] || fail "e: $(role e)"
	# restart: no is the string "no" (YAML 1.2, as Compose v2 reads it),
	# what cpipe does anyway: no warning.
	run cpipe config --explain
	[ "$status" -eq 0 ] || fail "restart: no refused"
	[[ "$output" != *"compose.yaml:5:"* ]] || fail "restart: no warned about"
}

@test "a bad restart value is refused with the values compose takes" {
	compose <<'EOF'
services:
  a: {image: x, command: a, restart: allways}
EOF
	run cpipe config
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains 'compose.yaml:2:38: stage "a": restart must be no, always, on-failure[:N] or unless-stopped, got allways (did you mean "always"?)'
}

@test "published ports make a service unless a stage waits for it to complete" {
	compose <<'EOF'
services:
  web: {image: x, command: serve, ports: ["8000:8000"]}
  export:
    image: x
    command: export
    ports: ["9000:9000"]
  report:
    image: x
    command: report
    depends_on:
      export: {condition: service_completed_successfully}
EOF
	[ "$(role web)" = service ] || fail "web: $(role web)"
	[ "$(role export)" = job ] || fail "export: $(role export)"
}

@test "depends_on without a condition means completed on a job and started on a service" {
	compose <<'EOF'
services:
  train: {image: x, command: train}
  redis: {image: redis, command: redis-server, ports: ["6379:6379"]}
  evaluate:
    image: x
    command: evaluate
    depends_on: [train, redis]
EOF
	[ "$(condition evaluate train)" = service_completed_successfully ] ||
		fail "on train: $(condition evaluate train)"
	[ "$(condition evaluate redis)" = service_started ] || fail "on redis: $(condition evaluate redis)"
}

@test "an image run as it comes that a stage depends on is a service; one with a command is a job" {
	compose <<'EOF'
services:
  mongo: {image: mongo}
  backend:
    build: .
    depends_on: [mongo]
  seed: {image: mongo, command: mongorestore /dump}
  web:
    image: nginx
    depends_on: [seed]
EOF
	[ "$(role mongo)" = service ] || fail "mongo: $(role mongo)"
	[ "$(role seed)" = job ] || fail "seed: $(role seed)"
	[ "$(role backend)" = job ] || fail "backend: $(role backend)"
}

@test "service: true|false decides over every inferred reason" {
	compose <<'EOF'
services:
  a:
    image: x
    command: a
    service: false
    healthcheck: {test: ["CMD", "true"]}
    ports: ["8000:8000"]
  b: {image: x, command: b, service: true}
EOF
	[ "$(role a)" = job ] || fail "a: $(role a)"
	[ "$(role b)" = service ] || fail "b: $(role b)"
	run cpipe config --explain
	assert_contains "a: job: service: false"
}

@test "waiting for a service to complete is refused, as it would wait forever" {
	compose <<'EOF'
services:
  api:
    image: x
    command: serve
    depends_on: {}
  client:
    image: x
    command: call
    depends_on:
      api: {condition: service_started}
  batch:
    image: x
    command: batch
    depends_on:
      api: {condition: service_completed_successfully}
EOF
	run cpipe config
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains 'stage "batch" waits for "api" to complete, but "api" is a service'
}

@test "a redis + web file runs to completion: the server is started, the job runs, both end" {
	compose <<'EOF'
services:
  redis:
    image: redis
    command: sh -c 'exec sleep 300'
    restart: always
  web:
    image: web
    command: sh -c 'echo web ran'
    depends_on: [redis]
EOF
	run timeout 60 "$CPIPE_BIN" run
	[ "$status" -eq 0 ] || fail "run exited $status"
	assert_contains "starting service redis"
	assert_contains "web ran"
	assert_contains "redis stopped"
}

@test "up on a redis + web file returns once both are up, and down stops them" {
	port=$(free_port)
	compose <<EOF
services:
  redis:
    image: redis
    command: sh -c 'exec sleep 300'
    restart: always
  web:
    image: web
    command: sh -c 'exec busybox httpd -f -p 127.0.0.1:$port -h /'
    ports: ["127.0.0.1:$port:$port"]
    depends_on: [redis]
EOF
	run timeout 60 "$CPIPE_BIN" up
	[ "$status" -eq 0 ] || fail "up exited $status"
	run cpipe ps
	assert_contains "redis"
	assert_contains "127.0.0.1:$port->$port/tcp"
	run timeout 60 "$CPIPE_BIN" down
	[ "$status" -eq 0 ] || fail "down exited $status"
	port_closed "$port" || fail "web still listening after down"
}

@test "an MLflow + minio + postgres shaped file runs to completion" {
	compose <<'EOF'
services:
  postgres:
    image: postgres
    command: sh -c 'exec sleep 300'
    healthcheck: {test: ["CMD", "true"], interval: 200ms}
  minio:
    image: minio/minio
    command: sh -c 'exec sleep 300'
    healthcheck: {test: ["CMD", "true"], interval: 200ms}
  create-bucket:
    image: minio/mc
    entrypoint: sh -c 'echo bucket made'
    depends_on:
      minio: {condition: service_healthy}
    restart: "no"
  mlflow:
    image: mlflow
    command: sh -c 'exec sleep 300'
    depends_on:
      postgres: {condition: service_healthy}
      minio: {condition: service_healthy}
      create-bucket: {condition: service_completed_successfully}
    healthcheck: {test: ["CMD", "true"], interval: 200ms}
  train:
    image: trainer
    command: sh -c 'echo logged to mlflow'
    depends_on:
      mlflow: {condition: service_healthy}
EOF
	[ "$(role create-bucket)" = job ] || fail "create-bucket: $(role create-bucket)"
	[ "$(role mlflow)" = service ] || fail "mlflow: $(role mlflow)"
	run timeout 120 "$CPIPE_BIN" run
	[ "$status" -eq 0 ] || fail "run exited $status"
	assert_contains "bucket made"
	assert_contains "logged to mlflow"
}

@test "the example's docker-compose.yml runs to completion with cpipe -f docker-compose.yml run" {
	make -s -C "$EXAMPLE" > /dev/null
	cp -r "$EXAMPLE"/{docker-compose.yml,Dockerfile,.dockerignore,Makefile,src,tests,fixture,catgif} "$PROJ"/
	export CATGIF_DATA=./fixture
	CATGIF_PORT=$((20000 + RANDOM % 20000))
	export CATGIF_PORT
	run cpipe -f docker-compose.yml config --explain
	assert_contains 'serve: service: stage "infer" depends on it with service_healthy; it starts after the jobs that write a volume it mounts: prepare, train, evaluate'
	run timeout 600 "$CPIPE_BIN" -f docker-compose.yml run
	[ "$status" -eq 0 ] || fail "run exited $status"
	assert_contains "serve is healthy"
	assert_contains "correct -> /catgif/results/predictions.json"
}
