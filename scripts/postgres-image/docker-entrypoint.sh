#!/usr/bin/env bash
# The entrypoint of rehearse's PostgreSQL image. It follows the official
# `postgres` image (docker-library/postgres), so that anything written for
# that image (testcontainers' postgres module among them) works with this one:
#
# - POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER
#   (default postgres), POSTGRES_DB (default: the user), POSTGRES_INITDB_ARGS,
#   and the *_FILE variants of the first three;
# - a first start runs initdb as the postgres user, allows
#   `host all all all scram-sha-256`, starts a temporary server on the unix
#   socket only, creates POSTGRES_DB, runs /docker-entrypoint-initdb.d/*
#   (.sh, .sql, .sql.gz), and stops it again;
# - then `exec postgres "$@"` as the postgres user. Both servers print
#   "database system is ready to accept connections": the temporary one on
#   stdout (pg_ctl without -l), the real one on stderr.
set -Eeo pipefail

# file_env VAR [DEFAULT]: VAR from the environment or from the file named by
# VAR_FILE.
file_env() {
	local var="$1" fileVar="${1}_FILE" def="${2:-}"
	if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
		printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$fileVar"
		exit 1
	fi
	local val="$def"
	if [ "${!var:-}" ]; then
		val="${!var}"
	elif [ "${!fileVar:-}" ]; then
		val="$(< "${!fileVar}")"
	fi
	export "$var"="$val"
	unset "$fileVar"
}

if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 00700 "$PGDATA"
	chmod 03775 /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ "$1" = 'postgres' ]; then
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		file_env POSTGRES_PASSWORD
		file_env POSTGRES_USER postgres
		file_env POSTGRES_DB "$POSTGRES_USER"
		file_env POSTGRES_INITDB_ARGS
		auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
		if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != 'trust' ]; then
			cat >&2 <<-'EOM'
				Error: Database is uninitialized and superuser password is not specified.
				       You must specify POSTGRES_PASSWORD to a non-empty value for the
				       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

				       To allow connections without a password, set
				       POSTGRES_HOST_AUTH_METHOD=trust (not recommended).
			EOM
			exit 1
		fi

		# Before 14 the password would be stored as MD5, which a
		# scram-sha-256 line refuses: initdb sets password_encryption to
		# scram-sha-256 when its host method is scram-sha-256.
		if [ "$auth" = 'scram-sha-256' ]; then
			POSTGRES_INITDB_ARGS="--auth-host=scram-sha-256 $POSTGRES_INITDB_ARGS"
		fi
		# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words
		initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS
		printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"

		PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD" \
			pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start

		psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
		if [ "$POSTGRES_DB" != 'postgres' ]; then
			"${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;'
		fi
		shopt -s nullglob
		for f in /docker-entrypoint-initdb.d/*; do
			case "$f" in
				*.sh) printf '%s: running %s\n' "$0" "$f"; . "$f" ;;
				*.sql) printf '%s: running %s\n' "$0" "$f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
				*.sql.gz) printf '%s: running %s\n' "$0" "$f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
				*) printf '%s: ignoring %s\n' "$0" "$f" ;;
			esac
		done
		shopt -u nullglob

		pg_ctl -D "$PGDATA" -m fast -w stop
		unset PGPASSWORD
		echo
		echo 'PostgreSQL init process complete; ready for start up.'
		echo
	else
		echo
		echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
		echo
	fi
fi

exec "$@"
