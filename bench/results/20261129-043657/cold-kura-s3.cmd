# stop the server; rm -rf /tmp/kura-bench.51M7AL/kura-s3/cache; start it again; then:
sh bench/cold-fetch.sh time --port 50467 --user cold --password pwcold --expect 10000
# S3 requests: the lines radosgw logged meanwhile (cold-kura-s3-requests.log)
