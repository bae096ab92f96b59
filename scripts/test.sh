#!/usr/bin/env bash
# Runs every test muster has, against real parts: OpenSSH sshd (started by
# the tests themselves on random ports), sudo, a throwaway PostgreSQL cluster
# (or MUSTER_TEST_POSTGRES_URL), SQLite, and the local machine.
# Installs what is missing from Debian's packages when run as root (ruby is
# there for the Ruby task tests, puppet for apply and resources steps;
# python3 and perl come with Debian).
#
#   scripts/test.sh            everything (what CI runs)
#   FUZZTIME=1000000x scripts/test.sh   longer fuzzing (executions per target)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/apt-install.sh openssh-server openssh-client sudo tar ruby puppet
if [ "$(id -u)" -eq 0 ]; then
  mkdir -p /run/sshd && chmod 755 /run/sshd
fi
# The ssh, PostgreSQL and Puppet tests must really run here: a missing
# sshd, database or puppet is a failure, not a skip.
export MUSTER_TEST_REQUIRE_SSHD=1
export MUSTER_TEST_REQUIRE_POSTGRES=1
export MUSTER_TEST_REQUIRE_PUPPET=1
if [ -z "${MUSTER_TEST_POSTGRES_URL:-}" ]; then
  echo "==> starting a throwaway PostgreSQL cluster"
  eval "$(scripts/pgtest.sh)"
  trap 'scripts/pgtest.sh stop "$MUSTER_TEST_POSTGRES_DIR" >/dev/null 2>&1 || true' EXIT
fi
export CGO_ENABLED=${CGO_ENABLED:-1} # -race needs cgo; the shipped binary is built with CGO_ENABLED=0

echo "==> gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change: $bad" >&2; exit 1; fi

echo "==> go vet"
go vet ./...

echo "==> staticcheck"
if ! command -v staticcheck >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/staticcheck" ]; then
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
PATH="$PATH:$(go env GOPATH)/bin" staticcheck ./...

echo "==> layering"
go run ./scripts/layering

echo "==> static binary"
CGO_ENABLED=0 go build -o /tmp/muster-test-build ./cmd/muster
if ldd /tmp/muster-test-build >/dev/null 2>&1; then echo "muster binary is not static" >&2; exit 1; fi
rm -f /tmp/muster-test-build

echo "==> go test -race (concurrent packages)"
go test -race -count=1 ./internal/executor ./internal/transport/ssh ./internal/action ./internal/transport/local ./internal/store/sqlite ./internal/store/postgres \
  ./internal/server/dispatch ./internal/capacity ./internal/api ./internal/filewatch ./internal/events ./internal/engine

echo "==> go test (everything)"
go test -count=1 ./...

# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report a spurious "context deadline exceeded" failure when the time runs
# out under CPU contention (go.dev/issue/75804, fixed in Go 1.27). A real
# finding always writes its input under testdata/fuzz.
echo "==> fuzz (${FUZZTIME:=100000x} each)"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "--- $pkg $f"
    go test -run='^$' -fuzz="^${f}\$" -fuzztime="$FUZZTIME" "$pkg"
  done
done
echo "==> all tests passed"
