sh bench/cold-fetch.sh fill --port 34275 --user cold --password pwcold --count 10000 --seed 1 --batch 1
