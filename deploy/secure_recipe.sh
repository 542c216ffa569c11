#!/usr/bin/env bash
# Many machines, securely: the commands of docs/deployment.md, one step per machine role.
# tests/test_secure_recipe.py runs these same steps on 127.0.0.1.
#
#   deploy/secure_recipe.sh database          once, as a PostgreSQL superuser: the role and its databases
#   deploy/secure_recipe.sh pgpass            every machine that opens PostgreSQL: the password into ~/.pgpass
#   deploy/secure_recipe.sh tls-cert          once, on the tracking host: a self-signed certificate
#   deploy/secure_recipe.sh tracking-server   the tracking host: mlflow server, basic auth, TLS, allowed hosts
#   deploy/secure_recipe.sh tracking-user [USER]  as the MLflow admin: create USER or change its password
#   deploy/secure_recipe.sh env               print the exports a client needs (no secrets among them)
#   deploy/secure_recipe.sh worker TUNE_ARGS  every worker: sinernn tune TUNE_ARGS on the shared study
#   deploy/secure_recipe.sh storage-proxy [ARGS]  the proxy host: Optuna's gRPC proxy, on 127.0.0.1 only
#   deploy/secure_recipe.sh tunnel            every worker of the proxy: an SSH tunnel to it
#
# Settings come from the environment (defaults below). Secrets come only from the environment
# (asked for, without echo, at a terminal when unset: that keeps them out of shell history too) or
# from files of mode 0600, never from arguments, so `ps`, MLflow params and dvc.lock never see them:
#   SINERNN_DB_PASSWORD       the PostgreSQL role's password (steps database, pgpass)
#   MLFLOW_AUTH_ADMIN_PASSWORD  the MLflow admin's password, read on the server's first start only
#   SINERNN_MLFLOW_PASSWORD   the password tracking-user gives to USER
#   MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD  who a client is (tracking-user: the admin)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SINERNN_BIN:-$ROOT/.venv/bin}
DB_HOST=${SINERNN_DB_HOST:-db.example}           # or a socket directory (PostgreSQL on this machine)
DB_PORT=${SINERNN_DB_PORT:-5432}
DB_SSLMODE=${SINERNN_DB_SSLMODE:-verify-full}    # checks the server against ~/.postgresql/root.crt
DB_ROLE=${SINERNN_DB_ROLE:-sinernn}
DB_OPTUNA=${SINERNN_DB_OPTUNA:-optuna}
DB_MLFLOW=${SINERNN_DB_MLFLOW:-mlflow}
DB_AUTH=${SINERNN_DB_AUTH:-mlflow_auth}          # MLflow's users and permissions
DB_ADMIN_URL=${SINERNN_DB_ADMIN_URL:-postgresql:///postgres}  # a superuser (default: this machine's socket)
TRACKING_HOST=${SINERNN_TRACKING_HOST:-tracking.example}      # the name clients use
TRACKING_PORT=${SINERNN_TRACKING_PORT:-5000}
TRACKING_BIND=${SINERNN_TRACKING_BIND:-0.0.0.0}
TRACKING_WORKERS=${SINERNN_TRACKING_WORKERS:-4}
ARTIFACTS=${SINERNN_ARTIFACTS:-/shared/mlartifacts}
MLFLOW_USER=${SINERNN_MLFLOW_USER:-sinernn}      # the workers' MLflow account
PROXY_HOST=${SINERNN_PROXY_HOST:-proxy.example}
PROXY_PORT=${SINERNN_PROXY_PORT:-13000}
CONFIG=${SINERNN_CONFIG_DIR:-$HOME/.config/sinernn}  # auth.ini, keys, certificate (0700)
TRACKING_CA=${SINERNN_TRACKING_CA:-$CONFIG/tracking-cert.pem}  # what clients trust: a copy of the cert, or your CA

die() { echo "secure_recipe: $*" >&2; exit 2; }

secret() {  # secret VAR PROMPT: VAR from the environment, else asked for (not echoed) at a terminal
    if [[ -z ${!1:-} ]]; then
        [[ -t 0 ]] || die "set $1 (${2%:*}) in the environment"
        read -rsp "$2 " "${1?}" && echo >&2
        export "${1?}"
    fi
}

db_url() {  # db_url DATABASE: no password in it; libpq reads it from ~/.pgpass or $PGPASSFILE
    if [[ $DB_HOST == /* ]]; then
        echo "postgresql://$DB_ROLE@/$1?host=$DB_HOST&port=$DB_PORT&sslmode=$DB_SSLMODE"
    else
        echo "postgresql://$DB_ROLE@$DB_HOST:$DB_PORT/$1?sslmode=$DB_SSLMODE"
    fi
}

client_env() {
    export SINERNN_OPTUNA_STORAGE MLFLOW_TRACKING_URI MLFLOW_TRACKING_SERVER_CERT_PATH
    SINERNN_OPTUNA_STORAGE=$(db_url "$DB_OPTUNA")
    MLFLOW_TRACKING_URI=https://$TRACKING_HOST:$TRACKING_PORT
    MLFLOW_TRACKING_SERVER_CERT_PATH=$TRACKING_CA
}

step=${1:-}
shift || true
case $step in
database)
    # A login role that is not a superuser, cannot create roles or databases, and owns exactly
    # its three databases; nobody else may connect to them. The password is hashed (SCRAM) here,
    # so the statement, and any server log of it, holds only the hash. Run again to change it.
    secret SINERNN_DB_PASSWORD "PostgreSQL password for role $DB_ROLE:"
    SINERNN_DB_ADMIN_URL=$DB_ADMIN_URL "$BIN/python" - "$DB_ROLE" "$DB_OPTUNA" "$DB_MLFLOW" "$DB_AUTH" <<'PY'
import os, sys
import psycopg
from psycopg import sql

role, databases = sys.argv[1], sys.argv[2:]
with psycopg.connect(os.environ["SINERNN_DB_ADMIN_URL"], autocommit=True) as db:
    verifier = db.pgconn.encrypt_password(os.environ["SINERNN_DB_PASSWORD"].encode(), role.encode(), b"scram-sha-256")
    exists = db.execute("SELECT FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    db.execute(sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}").format(
        sql.SQL("ALTER" if exists else "CREATE"), sql.Identifier(role), sql.Literal(verifier.decode())))
    for name in databases:
        if not db.execute("SELECT FROM pg_database WHERE datname = %s", [name]).fetchone():
            db.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role)))
        db.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
print(f"role {role} (password set, not a superuser) owns {', '.join(databases)}")
PY
    ;;
pgpass)
    # One line host:port:*:role:password in ${PGPASSFILE:-~/.pgpass} (mode 0600, else libpq
    # ignores it), replacing this role's earlier line. ':' and '\' are escaped as libpq expects.
    secret SINERNN_DB_PASSWORD "PostgreSQL password for role $DB_ROLE:"
    file=${PGPASSFILE:-$HOME/.pgpass}
    escape() { local s=${1//\\/\\\\}; printf '%s' "${s//:/\\:}"; }
    prefix="$(escape "$DB_HOST"):$DB_PORT:*:$(escape "$DB_ROLE"):"
    umask 077
    touch "$file" && chmod 600 "$file"
    { P=$prefix awk 'index($0, ENVIRON["P"]) != 1' "$file"; printf '%s%s\n' "$prefix" "$(escape "$SINERNN_DB_PASSWORD")"; } > "$file.new"
    mv "$file.new" "$file"
    echo "wrote the password of $DB_ROLE@$DB_HOST:$DB_PORT to $file"
    ;;
tls-cert)
    # A self-signed certificate for TRACKING_HOST, valid 825 days. Clients trust exactly this
    # certificate (copy tracking-cert.pem to them); with your own CA, put its key and certificate
    # here instead and point SINERNN_TRACKING_CA at the CA's certificate.
    mkdir -p "$CONFIG" && chmod 700 "$CONFIG"
    if [[ $TRACKING_HOST =~ ^[0-9.]+$ || $TRACKING_HOST == *:* ]]; then san=IP:$TRACKING_HOST; else san=DNS:$TRACKING_HOST; fi
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
        -subj "/CN=$TRACKING_HOST" -addext "subjectAltName=$san" \
        -keyout "$CONFIG/tracking-key.pem" -out "$CONFIG/tracking-cert.pem" 2>/dev/null)
    chmod 644 "$CONFIG/tracking-cert.pem"
    echo "wrote $CONFIG/tracking-key.pem and $CONFIG/tracking-cert.pem (copy the certificate to every client)"
    ;;
tracking-server)
    # MLflow's basic-auth app: every request but /health needs a user and password; users live in
    # their own database. The admin is created on the first start from MLFLOW_AUTH_ADMIN_PASSWORD
    # (MLflow 3.17 has no default admin password); later starts ignore it. A checked password is
    # remembered for 60 s (checking one costs a scrypt hash, 0.1-1 s of CPU, and a worker sends
    # several requests a second), so a changed one may still open another server worker for that
    # long. TLS, because basic auth sends the password with every request; --allowed-hosts
    # refuses other Host headers (DNS rebinding).
    [[ -f $CONFIG/tracking-key.pem ]] || die "no $CONFIG/tracking-key.pem: run the tls-cert step first"
    umask 077
    [[ -s $CONFIG/flask-secret-key ]] || "$BIN/python" -c 'import secrets; print(secrets.token_hex(32))' > "$CONFIG/flask-secret-key"
    cat > "$CONFIG/mlflow-auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = $(db_url "$DB_AUTH")
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = 60
INI
    export MLFLOW_AUTH_CONFIG_PATH=$CONFIG/mlflow-auth.ini
    MLFLOW_FLASK_SERVER_SECRET_KEY=$(< "$CONFIG/flask-secret-key")  # CSRF; the same for every worker
    export MLFLOW_FLASK_SERVER_SECRET_KEY
    # No job runner: sinernn runs no MLflow jobs (GenAI scorers), and the runner would call this
    # server over plain HTTP; it also spares eight processes.
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
    exec "$BIN/mlflow" server --app-name basic-auth \
        --backend-store-uri "$(db_url "$DB_MLFLOW")" --artifacts-destination "$ARTIFACTS" \
        --host "$TRACKING_BIND" --port "$TRACKING_PORT" --workers "$TRACKING_WORKERS" \
        --allowed-hosts "$TRACKING_HOST:$TRACKING_PORT" --cors-allowed-origins "https://$TRACKING_HOST:$TRACKING_PORT" \
        --uvicorn-opts "--ssl-keyfile=$CONFIG/tracking-key.pem --ssl-certfile=$CONFIG/tracking-cert.pem"
    ;;
tracking-user)
    # As the admin: give USER (default: the workers' account) the password SINERNN_MLFLOW_PASSWORD,
    # creating the user if it does not exist. `tracking-user admin` changes the admin's own
    # password; any user may change its own the same way.
    user=${1:-$MLFLOW_USER}
    secret MLFLOW_TRACKING_USERNAME "MLflow admin user:"
    secret MLFLOW_TRACKING_PASSWORD "MLflow password of $MLFLOW_TRACKING_USERNAME:"
    secret SINERNN_MLFLOW_PASSWORD "new MLflow password for $user:"
    client_env
    "$BIN/python" - "$user" <<'PY'
import os, sys
from mlflow.exceptions import RestException
from mlflow.server import get_app_client

user, password = sys.argv[1], os.environ["SINERNN_MLFLOW_PASSWORD"]
client = get_app_client("basic-auth", tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
try:
    client.create_user(user, password)
    print(f"created MLflow user {user}")
except RestException as exc:
    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
        raise
    # Changing one's own password (the admin's, say) needs the current one as well.
    own = user == os.environ["MLFLOW_TRACKING_USERNAME"]
    client.update_user_password(user, password, current_password=os.environ["MLFLOW_TRACKING_PASSWORD"] if own else None)
    print(f"changed the MLflow password of {user}")
PY
    ;;
env)
    client_env
    for name in SINERNN_OPTUNA_STORAGE MLFLOW_TRACKING_URI MLFLOW_TRACKING_SERVER_CERT_PATH; do
        printf 'export %s=%q\n' "$name" "${!name}"
    done
    ;;
worker)
    # `sinernn tune` on the shared study; --storage grpc://127.0.0.1:PROXY_PORT goes through the
    # tunnel to the proxy instead of straight to PostgreSQL.
    secret MLFLOW_TRACKING_USERNAME "MLflow user:"
    secret MLFLOW_TRACKING_PASSWORD "MLflow password of $MLFLOW_TRACKING_USERNAME:"
    client_env
    exec "$BIN/sinernn" tune "$@"
    ;;
storage-proxy)
    # No authentication and no TLS in Optuna's proxy: it listens on 127.0.0.1 only, and workers
    # reach it through SSH (step tunnel), which authenticates and encrypts.
    exec "$BIN/sinernn" storage-proxy --storage "$(db_url "$DB_OPTUNA")" --host 127.0.0.1 --port "$PROXY_PORT" "$@"
    ;;
tunnel)
    # This machine's 127.0.0.1:PROXY_PORT becomes the proxy host's, over SSH.
    exec ssh -N -o ExitOnForwardFailure=yes -L "127.0.0.1:$PROXY_PORT:127.0.0.1:$PROXY_PORT" "$PROXY_HOST"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
