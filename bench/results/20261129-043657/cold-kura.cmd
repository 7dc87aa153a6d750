# stop the server; rm -rf /tmp/kura-bench.51M7AL/kura/cache; start it again; then:
sh bench/cold-fetch.sh time --port 35819 --user cold --password pwcold --expect 10000
