#!/bin/bash
# `etcdctl check perf --load=s` against a real etcd and against the etcd-front release binary
# over SQLite, one after the other on the same machine, printing each summary.
# Build first: cargo build --release -p etcd-front. Needs etcd and etcdctl 3.4 on PATH.
set -u
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
front_bin=${CARGO_TARGET_DIR:-target}/release/etcd-front
# etcdctl redraws a progress bar with carriage returns; keep the verdict lines.
summary() { tr "\r" "\n" | grep -aoE "(PASS|FAIL).*"; }

etcd --name default --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:24379 \
  --advertise-client-urls http://127.0.0.1:24379 --listen-peer-urls http://127.0.0.1:24380 \
  --initial-advertise-peer-urls http://127.0.0.1:24380 \
  --initial-cluster default=http://127.0.0.1:24380 > "$work/etcd.log" 2>&1 &
etcd_pid=$!
sleep 3
echo "== real etcd $(etcd --version | head -1)"
ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:24379 check perf --load=s 2>&1 | summary
kill "$etcd_pid"; wait "$etcd_pid" 2>/dev/null

"$front_bin" --data-dir "$work/front" --listen-client-urls http://127.0.0.1:24479 \
  > "$work/front.log" 2>&1 &
front_pid=$!
sleep 2
echo "== etcd-front (release) over SQLite"
ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:24479 check perf --load=s 2>&1 | summary
kill "$front_pid"; wait "$front_pid" 2>/dev/null
