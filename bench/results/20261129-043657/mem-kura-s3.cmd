# restart the server, wait 1 s, then: sh bench/proc-mem.sh 5647
build/bench/kura-bench --host 127.0.0.1 --port 34075 --users u%d --user-count 100 --password pw%s --profile idle --idle-conns 1000 --clients 0 --duration 8 --seed 1 --json /work/main/bench/results/20261129-043657/mem-kura-s3.bench.json
# 1 s after it reports all connections in IDLE: sh bench/proc-mem.sh 5647, 3 times 0.3 s apart (median)
