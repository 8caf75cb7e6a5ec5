#!/usr/bin/env bash
# Runs Tresor's S3 tests against a local Ceph RADOS Gateway instead of SeaweedFS: the realism
# check for what RGW (and AWS) do differently (../shared/S3.md). Not part of CI: RGW needs
# `apt-get install -y radosgw ceph` (112 packages) and about 20 s to start.
#
#   scripts/test-s3-rgw.sh [extra swift test arguments]
#
# It starts a single-node Ceph with ../shared/rgw/start.sh (RGW_START overrides the path), creates
# the scoped users the tests expect (see SeaweedServer.swift) with bucket policies that give them
# exactly what SeaweedFS's identities have, runs the S3 suites with TRESOR_TEST_S3_ENDPOINT set
# (SeaweedServer then starts nothing and uses RGW), and stops Ceph by PID on exit. Tests that
# kill or restart the server are skipped: the script does not own RGW's lifecycle per test.
set -euo pipefail
cd "$(dirname "$0")/.."
RGW_START=${RGW_START:-$(pwd)/../shared/rgw/start.sh}
RGW_STOP=${RGW_STOP:-$(dirname "$RGW_START")/stop.sh}
command -v radosgw >/dev/null && command -v aws >/dev/null || {
  echo "error: needs radosgw, ceph and the aws cli" >&2
  echo "hint: apt-get install -y radosgw ceph; pip install awscli" >&2
  exit 2
}
export D=${D:-${TMPDIR:-/tmp}/tresor-rgw-test}
export RGW_PORT=${RGW_PORT:-7480}
SECRET=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export S3_ACCESS_KEY=tresortestkey S3_SECRET_KEY="tresortestkey-secret-$SECRET"
trap 'bash "$RGW_STOP"' EXIT
bash "$RGW_START"
C=$D/ceph.conf
for u in tresorwalonly tresorwalwriteonly tresorwallist tresornopacks; do
  radosgw-admin -c "$C" user create --uid="$u" --display-name="$u" --access-key="$u" --secret-key="$u-secret-$SECRET" >/dev/null
done

ENDPOINT=http://127.0.0.1:$RGW_PORT
op() { AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_DEFAULT_REGION=us-east-1 aws --endpoint-url "$ENDPOINT" "$@"; }
op s3api create-bucket --bucket pgwal >/dev/null
op s3api create-bucket --bucket restricted >/dev/null
user() { echo "\"arn:aws:iam:::user/$1\""; }
W=tenants/acme/wal
# The WAL users: as pg setup's scope names it (walonly, tenant acme), write-only (walwriteonly,
# tenant wpush) and write+list without read (wallist, tenant wlist); ListBucket only with an
# s3:prefix condition, as AWS allows it.
cat > "$D/pgwal-policy.json" <<JSON
{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":[$(user tresorwalonly)]},"Action":["s3:PutObject","s3:PutObjectAcl","s3:GetObject"],"Resource":["arn:aws:s3:::pgwal/$W/*"]},
 {"Effect":"Allow","Principal":{"AWS":[$(user tresorwalonly)]},"Action":["s3:ListBucket"],
  "Resource":["arn:aws:s3:::pgwal"],"Condition":{"StringLike":{"s3:prefix":["$W/*"]}}},
 {"Effect":"Allow","Principal":{"AWS":[$(user tresorwalwriteonly)]},"Action":["s3:PutObject","s3:PutObjectAcl"],"Resource":["arn:aws:s3:::pgwal/tenants/wpush/wal/*"]},
 {"Effect":"Allow","Principal":{"AWS":[$(user tresorwallist)]},"Action":["s3:PutObject","s3:PutObjectAcl"],"Resource":["arn:aws:s3:::pgwal/tenants/wlist/wal/*"]},
 {"Effect":"Allow","Principal":{"AWS":[$(user tresorwallist)]},"Action":["s3:ListBucket"],
  "Resource":["arn:aws:s3:::pgwal"],"Condition":{"StringLike":{"s3:prefix":["tenants/wlist/wal/*"]}}}]}
JSON
op s3api put-bucket-policy --bucket pgwal --policy "file://$D/pgwal-policy.json"
R=tresor/tenants/acme
cat > "$D/restricted-policy.json" <<JSON
{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":[$(user tresornopacks)]},"Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::restricted"]},
 {"Effect":"Allow","Principal":{"AWS":[$(user tresornopacks)]},"Action":["s3:GetObject"],
  "Resource":["arn:aws:s3:::restricted/$R/keys/*","arn:aws:s3:::restricted/$R/index/*","arn:aws:s3:::restricted/$R/snapshots/*","arn:aws:s3:::restricted/$R/config"]}]}
JSON
op s3api put-bucket-policy --bucket restricted --policy "file://$D/restricted-policy.json"

export TRESOR_TEST_S3_ENDPOINT=$ENDPOINT TRESOR_TEST_S3_REGION=${TRESOR_TEST_S3_REGION:-default} TRESOR_TEST_S3_SECRET=$SECRET
swift build --build-tests
swift test --skip-build --filter 'S3Tests|S3RealityTests|S3AccessTests|S3StoreTests|walOnAnS3Store' \
  --skip 'aServerKilledDuringAnUpload|aPutRetriedAcrossAServerRestart' "$@"
