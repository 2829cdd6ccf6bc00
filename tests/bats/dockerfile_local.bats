#!/usr/bin/env bats
# The local runtime runs the image's code: a stage with build: and no
# command: takes its Dockerfile's WORKDIR, ENV, USER, ENTRYPOINT and CMD,
# and sees the COPY'd files of the build context where the image has them,
# as the course repos' docker-compose.yml files expect.

load helpers

# The course's shape: the program lives in the Dockerfile.
course_project() {
	cat > Dockerfile <<'EOF'
FROM python:3.11-slim
WORKDIR /workspace
COPY train.py .
RUN pip install --no-cache-dir torch
ENV EPOCHS=3 \
    LR=0.1
CMD ["python3", "train.py"]
EOF
	cat > train.py <<'EOF'
import os
print("training", os.environ["EPOCHS"], "epochs at lr", os.environ["LR"],
      "in", os.getcwd(), "from", os.path.abspath(__file__))
os.makedirs("/workspace/out", exist_ok=True)
with open("/workspace/out/model.txt", "w") as f:
    f.write("weights after %s epochs\n" % os.environ["EPOCHS"])
try:
    open("/workspace/train.py", "a").close()
    print("train.py is writable")
except OSError:
    print("train.py is read-only")
EOF
}

@test "a course docker-compose.yml with no command: runs the Dockerfile's CMD from its WORKDIR" {
	course_project
	cat > docker-compose.yml <<'EOF'
services:
  train:
    build: .
    environment:
      LR: "0.01"
    volumes:
      - mnist:/workspace/out
volumes:
  mnist:
EOF
	run cpipe run train
	[ "$status" -eq 0 ] || fail "cpipe run train exited $status"
	assert_contains "train | training 3 epochs at lr 0.01 in /workspace from /workspace/train.py"
	assert_contains "train | train.py is read-only"
	[ "$(cat "$(vol mnist)/model.txt")" = "weights after 3 epochs" ]
	# Said once, naming the line of the RUN step.
	[ "$(grep -c "RUN step" <<< "$output")" -eq 1 ] || fail "RUN warning not said once"
	assert_contains "cpipe: warning: Dockerfile:4: stage \"train\": the local runtime does not run the Dockerfile's RUN step (Dockerfile:4); the host must provide what it installs, or run the stage with --runtime docker"
}

@test "what the Dockerfile does not reproduce is said when stages run, not by commands that read history" {
	course_project
	cat > docker-compose.yml <<'EOF'
services:
  train:
    build: .
    volumes:
      - mnist:/workspace/out
volumes:
  mnist:
EOF
	run cpipe run train
	[ "$status" -eq 0 ] || fail "cpipe run train exited $status"
	assert_contains "RUN step (Dockerfile:4)"
	local verb said
	for verb in status runs "show latest" ps; do
		said=$(cpipe $verb 2>&1 > /dev/null) || fail "cpipe $verb failed: $said"
		[[ "$said" != *"RUN step"* ]] || fail "cpipe $verb repeated the RUN warning: $said"
	done
	run cpipe config --explain
	assert_contains "RUN step (Dockerfile:4)"
}

@test "config --explain says which fields and files came from the Dockerfile" {
	course_project
	cat > docker-compose.yml <<'EOF'
services:
  train:
    build: .
    working_dir: /workspace
EOF
	run cpipe config --explain
	[ "$status" -eq 0 ] || fail "config --explain exited $status"
	assert_contains "  command: Dockerfile:7"
	assert_contains "  environment: Dockerfile:5"
	assert_contains "  /workspace/train.py: Dockerfile:3, from $PROJ/train.py"
	refute_contains "working_dir: Dockerfile"
	# The plain config is the spec as compose prints it.
	run cpipe config --json
	[ "$(jq -r '.stages.train.command // "none"' <<< "$output")" = none ] || fail "config shows the image's CMD"
}

@test "a named volume on the WORKDIR is filled from the image's files when empty, as docker does" {
	course_project
	sed -i 's|/workspace/out|/workspace/results|g' train.py
	cat > docker-compose.yml <<'EOF'
services:
  train:
    build: .
    volumes:
      - code:/workspace
volumes:
  code:
EOF
	run cpipe run train
	[ "$status" -eq 0 ] || fail "cpipe run train exited $status"
	assert_contains "from /workspace/train.py"
	# The program is the volume's copy: writable, as in the container.
	assert_contains "train.py is writable"
	cmp "$(vol code)/train.py" train.py || fail "the volume holds no copy of train.py"
	[ -f "$(vol code)/results/model.txt" ] || fail "no model written into the volume"
	# A volume with content is never refilled.
	echo 'print("changed")' > train.py
	run cpipe run train --force
	[ "$status" -eq 0 ] || fail "second run exited $status"
	refute_contains "changed"
	assert_contains "training 3 epochs"
}

@test "a multi-stage Dockerfile: build target picks the stage, FROM an earlier stage inherits its config" {
	cat > Dockerfile <<'EOF'
# escape=\
ARG PY=python3
FROM python:3.11-slim AS base
WORKDIR /opt/app
ENV MODE=base
COPY lib/ ./lib/
CMD ["sh", "-c", "echo base stage"]

FROM base AS train
ARG PY
ENV MODE=train RUNNER=${PY:-python}
COPY train.py .
CMD ["sh", "-c", "echo mode=$MODE runner=$RUNNER; ls /opt/app /opt/app/lib; cat lib/util.txt"]

FROM base
CMD ["sh", "-c", "echo final stage"]
EOF
	mkdir -p lib
	echo "util from lib" > lib/util.txt
	echo 'print(1)' > train.py
	cat > docker-compose.yml <<'EOF'
services:
  train:
    build:
      context: .
      target: train
      args:
        PY: python3.11
EOF
	run cpipe run train
	[ "$status" -eq 0 ] || fail "cpipe run train exited $status"
	assert_contains "train | mode=train runner=python3.11"
	assert_contains "train | util from lib"
	assert_contains "train | train.py"
	refute_contains "final stage"
	refute_contains "base stage"
}

@test "compose keys win over the image's: command, entrypoint (which drops CMD), working_dir, environment" {
	cat > Dockerfile <<'EOF'
FROM python:3.11-slim
WORKDIR /srv
ENV A=image B=image
COPY . .
ENTRYPOINT ["sh", "-c", "echo entry \"$0\" \"$@\"; echo A=$A B=$B; pwd"]
CMD ["from-cmd"]
EOF
	cat > docker-compose.yml <<'EOF'
services:
  own:
    build: .
    command: ["from-compose"]
    environment: {B: compose}
  entry:
    build: .
    entrypoint: ["sh", "-c", "echo replaced; pwd; ls"]
    working_dir: /tmp
  image:
    build: .
EOF
	run cpipe run own
	[ "$status" -eq 0 ] || fail "own exited $status"
	assert_contains "own | entry from-compose"
	assert_contains "own | A=image B=compose"
	assert_contains "own | /srv"
	run cpipe run entry
	[ "$status" -eq 0 ] || fail "entry exited $status"
	assert_contains "entry | replaced"
	assert_contains "entry | /tmp"
	refute_contains "from-cmd"
	run cpipe run image
	[ "$status" -eq 0 ] || fail "image exited $status"
	assert_contains "image | entry from-cmd"
	assert_contains "image | A=image B=image"
}

@test "COPY . honours .dockerignore with ** and ! exceptions, and never shows cpipe's state" {
	mkdir -p data/raw src/pkg
	echo keep > data/keep.txt
	echo raw > data/raw/big.bin
	echo code > src/pkg/mod.py
	echo cache > src/pkg/mod.pyc
	echo secret > .env.local
	printf '**/*.pyc\ndata\n!data/keep.txt\n.env*\n' > .dockerignore
	cat > Dockerfile <<'EOF'
FROM debian:bookworm-slim
WORKDIR /app
COPY . .
CMD ["sh", "-c", "cd /app && find . -type f | sort | tr '\\n' ' '"]
EOF
	cat > compose.yaml <<'EOF'
services:
  list: {build: .}
EOF
	run cpipe run list
	[ "$status" -eq 0 ] || fail "list exited $status"
	assert_contains "./data/keep.txt"
	assert_contains "./src/pkg/mod.py "
	refute_contains "mod.pyc"
	refute_contains "big.bin"
	refute_contains ".env.local"
	refute_contains ".cpipe"
}

@test "a stage with only image: and no command fails before anything runs, naming both ways out" {
	cat > docker-compose.yml <<'EOF'
services:
  prepare:
    image: busybox
    command: sh -c 'touch prepared'
  train:
    image: python:3.11-slim
    depends_on: [prepare]
EOF
	run cpipe run train
	[ "$status" -eq 2 ] || fail "expected exit 2, got $status"
	assert_contains 'cpipe: docker-compose.yml:5:3: stage "train" has no command, and the local runtime runs commands, not images; add "command: ..." to the stage, or run it with --runtime docker'
	[ ! -e prepared ] || fail "the upstream stage ran"
	[ ! -d .cpipe/runs ] || [ -z "$(ls .cpipe/runs)" ] || fail "a run was recorded"
}

@test "a Dockerfile without CMD, or one cpipe cannot read, fails at plan time with its line" {
	printf 'FROM python:3.11-slim\nWORKDIR /w\n' > Dockerfile
	printf 'services:\n  train: {build: .}\n' > compose.yaml
	run cpipe run train
	[ "$status" -eq 2 ] || fail "expected exit 2, got $status"
	assert_contains 'stage "train" has no command: its Dockerfile Dockerfile sets no CMD or ENTRYPOINT, and the local runtime cannot know those of the base image python:3.11-slim; add "command: ..." to the stage, or run it with --runtime docker'
	printf 'FROM python:3.11-slim\nCOPY train.py .\nCMDD ["python3"]\n' > Dockerfile
	touch train.py
	run cpipe run train
	[ "$status" -eq 2 ] || fail "expected exit 2, got $status"
	assert_contains 'cpipe: Dockerfile:3: unknown instruction "CMDD" (did you mean "CMD"?)'
	printf 'FROM python:3.11-slim\nCOPY missing.py .\nCMD ["python3"]\n' > Dockerfile
	run cpipe run train
	[ "$status" -eq 2 ] || fail "expected exit 2, got $status"
	assert_contains "cpipe: Dockerfile:2: stage \"train\": COPY missing.py: no such file in the build context $PROJ"
}

@test "python where the host has only python3: the error names python3 and python-is-python3" {
	[ ! -x /usr/bin/python ] && [ ! -x /usr/local/bin/python ] || skip "this host has python"
	course_project
	sed -i 's/"python3", "train.py"/"python", "train.py"/' Dockerfile
	printf 'services:\n  train: {build: .}\n' > compose.yaml
	run cpipe run train
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains 'command "python" not found in PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin); the host has python3 (/usr/bin/python3): use "python3" in the stage'"'"'s command, or install Debian'"'"'s package python-is-python3, which provides "python"'
}

@test "PATH from the image's ENV is the stage's PATH" {
	mkdir -p tools
	printf '#!/bin/sh\necho tool ran with PATH=$PATH\n' > tools/mytool
	chmod +x tools/mytool
	cat > Dockerfile <<'EOF'
FROM debian:bookworm-slim
COPY tools /opt/tools/bin
ENV PATH=/opt/tools/bin:$PATH
CMD ["mytool"]
EOF
	printf 'services:\n  t: {build: .}\n' > compose.yaml
	run cpipe run t
	[ "$status" -eq 0 ] || fail "t exited $status"
	assert_contains "t | tool ran with PATH=/opt/tools/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

@test "COPY --from a builder stage takes what the host built next to the context's files, and says so" {
	cat > Dockerfile <<'EOF'
FROM debian AS builder
WORKDIR /src
COPY build.sh ./
RUN ./build.sh
FROM debian:bookworm-slim
COPY --from=builder /src/app /usr/local/bin/app
COPY --from=builder /src/never-built /opt/x
CMD ["app"]
EOF
	printf '#!/bin/sh\nprintf "#!/bin/sh\\necho built app\\n" > app; chmod +x app\n' > build.sh
	chmod +x build.sh
	./build.sh
	printf 'services:\n  run: {build: .}\n' > compose.yaml
	run cpipe run run
	[ "$status" -eq 0 ] || fail "run exited $status"
	assert_contains "run | built app"
	assert_contains "Dockerfile:6: stage \"run\": COPY --from=builder /src/app: taken from $PROJ/app, where the host must have built it"
	assert_contains "Dockerfile:7: stage \"run\": COPY --from=builder /src/never-built is not reproducible locally"
}
