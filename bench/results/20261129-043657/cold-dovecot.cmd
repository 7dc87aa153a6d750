# stop the server; rm Maildir/dovecot.index* dovecot.list.index* of user cold; start it again; then:
sh bench/cold-fetch.sh time --port 51649 --user cold --password pwcold --expect 10000
