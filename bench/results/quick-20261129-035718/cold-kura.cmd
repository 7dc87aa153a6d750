stop the server; rm -rf /tmp/kura-bench.WStpcg/kura/cache; start it again; then:
sh bench/cold-fetch.sh time --port 44391 --user cold --password pwcold --expect 1000
