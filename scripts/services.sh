#!/usr/bin/env bash
# Starts the local PostgreSQL and Redis this project's tests and benchmarks talk to, when they are
# down. Does nothing when both already answer, or when DATABASE_URL/REDIS_URL point elsewhere.
# (`npm start` does not run it: the sample app needs no server, see sample-app/README.md.)
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if [ -z "${DATABASE_URL:-}" ] && ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "services: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  pg_up || { echo "services: PostgreSQL is not reachable on 127.0.0.1:5432 (set DATABASE_URL)" >&2; exit 1; }
fi

if [ -z "${REDIS_URL:-}" ] && ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting Redis" >&2
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  fi
  redis_up || { echo "services: Redis is not reachable on 127.0.0.1:6379 (set REDIS_URL)" >&2; exit 1; }
fi
