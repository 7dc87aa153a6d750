stop the server; rm -rf /tmp/kura-bench.WStpcg/kura-s3/cache; start it again; then:
sh bench/cold-fetch.sh time --port 51323 --user cold --password pwcold --expect 1000
