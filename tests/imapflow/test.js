'use strict';
// kura-imapd against imapflow, doing what desktop/mobile clients
// (Thunderbird, K-9) do: initial sync of a 500-message account, QRESYNC
// resync after another session's changes, IDLE push within 1 s, MOVE to
// Trash, search, with COMPRESS=DEFLATE active.  No test framework: the
// last line is "imapflow: N passed, M failed".
//
// Environment (run.sh sets it): IMAP_HOST, IMAP_PORT (plain),
// IMAP_TLS_PORT (implicit TLS, optional), IMAP_USER, IMAP_PASS.

const { ImapFlow } = require('imapflow');
const crypto = require('crypto');

const HOST = process.env.IMAP_HOST || '127.0.0.1';
const PORT = Number(process.env.IMAP_PORT || 1143);
const TLS_PORT = process.env.IMAP_TLS_PORT ? Number(process.env.IMAP_TLS_PORT) : 0;
const USER = process.env.IMAP_USER || 'flow';
const PASS = process.env.IMAP_PASS || 'flowpw';
const TOTAL = 500;

let passed = 0;
let failed = 0;

function check(cond, what, detail) {
    if (cond) {
        passed++;
    } else {
        failed++;
        console.log('FAIL ' + what + (detail !== undefined ? ': ' + detail : ''));
    }
    return cond;
}

function eq(got, want, what) {
    const g = JSON.stringify(got);
    const w = JSON.stringify(want);
    return check(g === w, what, 'got ' + String(g).slice(0, 300) + ', want ' + String(w).slice(0, 300));
}

// Records the commands imapflow sends (its debug log), to see COMPRESS etc.
function recorder() {
    const lines = [];
    const rec = obj => {
        if (obj && typeof obj === 'object') {
            lines.push(obj);
        }
    };
    return {
        lines,
        logger: { debug: rec, info: rec, warn: rec, error: rec, trace: () => {}, fatal: rec }
    };
}

function client(opts = {}) {
    const rec = recorder();
    const c = new ImapFlow(Object.assign({
        host: HOST,
        port: PORT,
        secure: false,
        doSTARTTLS: false,
        auth: { user: USER, pass: PASS },
        logger: rec.logger,
        qresync: true,
        disableAutoIdle: true,
        tls: { rejectUnauthorized: false },
        connectionTimeout: 10000,
        greetingTimeout: 10000
    }, opts));
    c.rec = rec;
    c.on('error', err => console.log('# client error: ' + err.message));
    return c;
}

function sleep(ms) {
    return new Promise(resolve => setTimeout(resolve, ms));
}

function waitFor(emitter, event, pred, ms) {
    return new Promise(resolve => {
        const t0 = Date.now();
        const timer = setTimeout(() => {
            emitter.removeListener(event, on);
            resolve(null);
        }, ms);
        function on(ev) {
            if (!pred || pred(ev)) {
                clearTimeout(timer);
                emitter.removeListener(event, on);
                resolve({ ev, ms: Date.now() - t0 });
            }
        }
        emitter.on(event, on);
    });
}

// ------------------------------------------------------------ fixtures

function crlf(s) {
    return Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf-8');
}

// Message i: plain text, or (every 5th) multipart/mixed with a base64
// attachment, or (every 7th) a reply in a thread.  Flags vary.
function fixture(i) {
    const date = new Date(Date.UTC(2023, 0, 1, 0, 0, 0) + i * 3600 * 1000);
    const id = '<flow' + i + '@kura.test>';
    const subject = (i % 7 === 3 ? 'Re: ' : '') + 'Message number ' + i + (i % 11 === 0 ? ' \u00e4\u00f6\u00fc' : '');
    const headers = [
        'From: Sender ' + (i % 13) + ' <sender' + (i % 13) + '@example.org>',
        'To: Flow <flow@example.net>',
        'Subject: ' + (/[^\x00-\x7f]/.test(subject) ? '=?UTF-8?B?' + Buffer.from(subject).toString('base64') + '?=' : subject),
        'Date: ' + date.toUTCString().replace('GMT', '+0000'),
        'Message-ID: ' + id
    ];
    if (i % 7 === 3 && i > 3) {
        headers.push('In-Reply-To: <flow' + (i - 7) + '@kura.test>', 'References: <flow' + (i - 7) + '@kura.test>');
    }
    let attachment = null;
    let body;
    if (i % 5 === 0) {
        attachment = crypto.createHash('sha256').update('att' + i).digest();
        attachment = Buffer.concat(Array(40).fill(attachment));
        headers.push('MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="bnd' + i + '"');
        body = '\n--bnd' + i + '\nContent-Type: text/plain; charset=utf-8\n\nBody of message ' + i + '.\n' +
            '\n--bnd' + i + '\nContent-Type: application/octet-stream; name="a' + i + '.bin"\n' +
            'Content-Disposition: attachment; filename="a' + i + '.bin"\nContent-Transfer-Encoding: base64\n\n' +
            attachment.toString('base64').replace(/(.{76})/g, '$1\n') + '\n--bnd' + i + '--\n';
    } else {
        body = 'Body of message ' + i + '.\n' + 'Some text line.\n'.repeat(i % 17);
    }
    const flags = [];
    if (i % 2 === 0) flags.push('\\Seen');
    if (i % 9 === 0) flags.push('\\Flagged');
    if (i % 10 === 1) flags.push('$Label1');
    return { i, id, subject, date, raw: crlf(headers.join('\n') + '\n\n' + body), flags, attachment };
}

// ------------------------------------------------------------ scenarios

// Seeding is not part of the scenario (the account exists before the
// client comes): MULTIAPPEND batches of 50 over a raw socket.
function imapDate(d) {
    const mon = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getUTCMonth()];
    const p = n => String(n).padStart(2, '0');
    return p(d.getUTCDate()) + '-' + mon + '-' + d.getUTCFullYear() + ' ' + p(d.getUTCHours()) + ':' +
        p(d.getUTCMinutes()) + ':' + p(d.getUTCSeconds()) + ' +0000';
}

function seed(fixtures) {
    const net = require('net');
    return new Promise((resolve, reject) => {
        const sock = net.connect(PORT, HOST);
        let buf = '';
        let step = 0;
        const batches = [];
        for (let k = 0; k < fixtures.length; k += 50) batches.push(fixtures.slice(k, k + 50));
        const send = () => {
            if (step === 0) {
                sock.write('s0 LOGIN ' + USER + ' ' + PASS + '\r\n');
            } else if (step <= batches.length) {
                const parts = [Buffer.from('s' + step + ' APPEND INBOX')];
                for (const f of batches[step - 1]) {
                    parts.push(Buffer.from(' (' + f.flags.join(' ') + ') "' + imapDate(f.date) + '" {' + f.raw.length + '+}\r\n'), f.raw);
                }
                parts.push(Buffer.from('\r\n'));
                sock.write(Buffer.concat(parts));
            } else {
                sock.end('s' + step + ' LOGOUT\r\n');
                return resolve();
            }
        };
        sock.on('error', reject);
        sock.on('data', d => {
            buf += d.toString('latin1');
            let i;
            while ((i = buf.indexOf('\n')) >= 0) {
                const line = buf.slice(0, i + 1);
                buf = buf.slice(i + 1);
                if (line.startsWith('* OK') && step === 0 && !sock.greeted) {
                    sock.greeted = true;
                    send();
                } else if (line.startsWith('s' + step + ' ')) {
                    if (!line.startsWith('s' + step + ' OK')) {
                        return reject(new Error('seeding: ' + line.trim()));
                    }
                    step++;
                    send();
                }
            }
        });
    });
}

async function initialSync(fixtures) {
    const c = client();
    const t0 = Date.now();
    let tm = t0;
    const mark = what => {
        if (process.env.IMAPFLOW_TIMING) console.log('#   ' + what + ': ' + (Date.now() - tm) + ' ms');
        tm = Date.now();
    };
    await c.connect();
    check(!!c._deflate, 'COMPRESS=DEFLATE active on the imapflow connection',
        'capabilities: ' + [...c.capabilities.keys()].join(' '));
    check(c.rec.lines.some(l => /COMPRESS/i.test(JSON.stringify(l))), 'imapflow sent COMPRESS');
    check(c.enabled.has('QRESYNC') && c.enabled.has('CONDSTORE'), 'ENABLE CONDSTORE QRESYNC',
        [...c.enabled].join(' '));
    const folders = await c.list();
    const special = {};
    for (const f of folders) {
        if (f.specialUse) special[f.specialUse] = f.path;
    }
    const sorted = Object.keys(special).sort().map(k => k + '=' + special[k]);
    eq(sorted, ['\\Archive=Archive', '\\Drafts=Drafts', '\\Inbox=INBOX', '\\Junk=Junk', '\\Sent=Sent', '\\Trash=Trash'],
        'special-use folders seen by imapflow');
    mark('connect+list');
    const mbox = await c.mailboxOpen('INBOX');
    eq(mbox.exists, TOTAL, 'EXISTS of the seeded INBOX');
    check(mbox.highestModseq > 0n || mbox.highestModseq > 0, 'HIGHESTMODSEQ after SELECT', String(mbox.highestModseq));
    const msgs = [];
    for await (const m of c.fetch('1:*', { uid: true, flags: true, envelope: true, bodyStructure: true, internalDate: true, size: true, threadId: false })) {
        msgs.push(m);
    }
    mark('fetch 1:*');
    eq(msgs.length, TOTAL, 'messages in the initial FETCH 1:* (envelope, flags, bodystructure)');
    let bad = [];
    for (let k = 0; k < msgs.length; k++) {
        const m = msgs[k];
        const f = fixtures[k];
        const flags = [...m.flags].filter(x => x !== '\\Recent').sort();
        if (m.envelope.messageId !== f.id || m.envelope.subject !== f.subject ||
            JSON.stringify(flags) !== JSON.stringify([...f.flags].sort()) || m.size !== f.raw.length ||
            m.internalDate.getTime() !== f.date.getTime() ||
            (f.attachment ? m.bodyStructure.type !== 'multipart/mixed' || m.bodyStructure.childNodes.length !== 2
                : m.bodyStructure.type !== 'text/plain')) {
            bad.push(k + 1);
        }
    }
    check(bad.length === 0, 'envelope/flags/size/date/bodystructure of all ' + TOTAL + ' messages', 'wrong: ' + bad.slice(0, 10).join(','));
    // Bodies of some: the newest 20 (what a client previews) and the attachments of 5.
    const newest = msgs.slice(-20);
    bad = [];
    for await (const m of c.fetch(newest[0].uid + ':*', { uid: true, source: true }, { uid: true })) {
        const f = fixtures[msgs.findIndex(x => x.uid === m.uid)];
        if (!f || !m.source.equals(f.raw)) bad.push(m.uid);
    }
    mark('bodies');
    check(bad.length === 0, 'BODY[] of the newest 20 messages byte for byte', 'wrong UIDs: ' + bad.join(','));
    bad = [];
    let withAtt = msgs.filter((m, k) => fixtures[k].attachment).slice(0, 5);
    for (const m of withAtt) {
        const f = fixtures[msgs.indexOf(m)];
        const dl = await c.download(String(m.uid), '2', { uid: true });
        const chunks = [];
        for await (const chunk of dl.content) chunks.push(chunk);
        if (!Buffer.concat(chunks).equals(f.attachment)) bad.push(m.uid);
    }
    mark('attachments');
    check(bad.length === 0, 'attachments (part 2, base64) of 5 messages decoded', 'wrong UIDs: ' + bad.join(','));
    const unseen = await c.search({ seen: false }, { uid: true });
    eq(unseen.length, fixtures.filter(f => !f.flags.includes('\\Seen')).length, 'SEARCH UNSEEN count');
    const st = await c.status('INBOX', { messages: true, unseen: true, uidNext: true, highestModseq: true });
    eq([st.messages, st.unseen], [TOTAL, unseen.length], 'STATUS MESSAGES UNSEEN');
    const raw = c.socket ? c.socket.bytesRead : 0;
    const stats = c.stats();
    console.log('# initial sync of ' + TOTAL + ' messages: ' + (Date.now() - t0) + ' ms; socket read ' + raw +
        ' octets, imapflow counted ' + stats.received + ' after inflating');
    check(raw > 0 && raw * 2 < stats.received, 'responses arrive deflated (raw octets < half of the inflated)',
        raw + ' raw vs ' + stats.received);
    const state = { uidValidity: mbox.uidValidity, highestModseq: st.highestModseq || mbox.highestModseq, uids: msgs.map(m => m.uid) };
    await c.logout();
    return state;
}

async function resync(state, fixtures) {
    // Another session changes things while the first client is away.
    const other = client({ qresync: false });
    await other.connect();
    await other.mailboxOpen('INBOX');
    const flagUids = state.uids.filter((u, k) => !fixtures[k].flags.includes('\\Seen')).slice(0, 10);
    await other.messageFlagsAdd(flagUids.join(','), ['\\Seen', '$Resynced'], { uid: true });
    const goneUids = [state.uids[4], state.uids[100], state.uids[101], state.uids[250], state.uids[499]];
    await other.messageDelete(goneUids.join(','), { uid: true });
    const added = [];
    for (let k = 0; k < 3; k++) {
        const r = await other.append('INBOX', crlf('Subject: added ' + k + '\nMessage-ID: <added' + k + '@kura.test>\n\nnew\n'));
        added.push(Number(r.uid));
    }
    await other.logout();

    const c = client();
    const vanished = [];
    const flagEvents = [];
    c.on('expunge', ev => vanished.push(ev));
    c.on('flags', ev => flagEvents.push(ev));
    await c.connect();
    const mbox = await c.mailboxOpen('INBOX', { uidValidity: state.uidValidity, changedSince: state.highestModseq });
    check(mbox.qresync === true, 'SELECT (QRESYNC) accepted by imapflow (UIDVALIDITY and HIGHESTMODSEQ match)');
    eq(mbox.exists, TOTAL - 5 + 3, 'EXISTS after the other session\'s changes');
    const vuids = vanished.filter(ev => ev.vanished && ev.earlier).map(ev => Number(ev.uid)).sort((a, b) => a - b);
    check(goneUids.every(u => vuids.includes(u)) && vuids.every(u => !state.uids.includes(u) || goneUids.includes(u)),
        'VANISHED (EARLIER) in SELECT (QRESYNC) names the 5 expunged UIDs', 'got ' + vuids.join(','));
    const fl = {};
    for (const ev of flagEvents) if (ev.uid) fl[Number(ev.uid)] = ev.flags;
    check(flagUids.every(u => fl[u] && fl[u].has('\\Seen') && fl[u].has('$Resynced')),
        'FETCH FLAGS in SELECT (QRESYNC) for the 10 changed messages', 'got ' + Object.keys(fl).join(','));
    // And the new ones (plus the changed) through UID FETCH (CHANGEDSINCE).
    const changed = [];
    for await (const m of c.fetch('1:*', { uid: true, flags: true }, { uid: true, changedSince: state.highestModseq })) {
        changed.push(Number(m.uid));
    }
    check(added.every(u => changed.includes(u)) && flagUids.every(u => changed.includes(u)),
        'UID FETCH (CHANGEDSINCE) returns the changed and the new messages', 'got ' + changed.join(','));
    await c.logout();
}

async function idlePush() {
    const c = client();
    await c.connect();
    await c.mailboxOpen('INBOX');
    const other = client({ qresync: false });
    await other.connect();
    await other.mailboxOpen('INBOX');
    const exists0 = c.mailbox.exists;
    const idling = c.idle();
    await sleep(200);
    const wExists = waitFor(c, 'exists', ev => ev.count === exists0 + 1, 5000);
    const app = await other.append('INBOX', crlf('Subject: push\nMessage-ID: <push@kura.test>\n\nidle\n'));
    const got = await wExists;
    check(got !== null && got.ms <= 1000, 'IDLE: EXISTS within 1 s of another session\'s APPEND',
        got ? got.ms + ' ms' : 'no exists event in 5 s');
    const wFlags = waitFor(c, 'flags', ev => ev.flags && ev.flags.has('\\Flagged'), 5000);
    await other.messageFlagsAdd(String(app.uid), ['\\Flagged'], { uid: true });
    const gotF = await wFlags;
    check(gotF !== null && gotF.ms <= 1000, 'IDLE: FETCH FLAGS within 1 s of another session\'s STORE',
        gotF ? gotF.ms + ' ms' : 'no flags event in 5 s');
    const wGone = waitFor(c, 'expunge', () => true, 5000);
    await other.messageDelete(String(app.uid), { uid: true });
    const gotE = await wGone;
    check(gotE !== null && gotE.ms <= 1000 && gotE.ev.vanished === true && Number(gotE.ev.uid) === Number(app.uid),
        'IDLE: VANISHED (QRESYNC) within 1 s of another session\'s expunge',
        gotE ? JSON.stringify(gotE.ev) + ' after ' + gotE.ms + ' ms' : 'no expunge event in 5 s');
    // A command ends IDLE (imapflow sends DONE): NOOP works.
    await c.noop();
    await idling.catch(() => {});
    await other.logout();
    await c.logout();
}

async function moveToTrash() {
    const c = client();
    await c.connect();
    const mbox = await c.mailboxOpen('INBOX');
    const before = mbox.exists;
    const trash0 = (await c.status('Trash', { messages: true })).messages;
    const three = [];
    for await (const m of c.fetch('1:3', { uid: true, envelope: true })) three.push(m);
    const res = await c.messageMove(three.map(m => m.uid).join(','), 'Trash', { uid: true });
    check(res && res.uidMap && res.uidMap.size === 3, 'MOVE to Trash returns a UID map of 3 (COPYUID)',
        JSON.stringify(res && [...(res.uidMap || [])]));
    await c.noop();
    eq(c.mailbox.exists, before - 3, 'INBOX EXISTS after MOVE');
    eq((await c.status('Trash', { messages: true })).messages, trash0 + 3, 'Trash MESSAGES after MOVE');
    await c.mailboxOpen('Trash');
    const ids = [];
    for await (const m of c.fetch('1:*', { envelope: true })) ids.push(m.envelope.messageId);
    check(three.every(m => ids.includes(m.envelope.messageId)), 'moved messages are in Trash', ids.join(','));
    await c.logout();
}

async function tlsCompress() {
    if (!TLS_PORT) return;
    const c = client({ port: TLS_PORT, secure: true });
    await c.connect();
    check(!!c._deflate, 'COMPRESS=DEFLATE active over implicit TLS');
    const m = await c.mailboxOpen('INBOX');
    let n = 0;
    for await (const msg of c.fetch('1:*', { uid: true, envelope: true, flags: true })) {
        if (msg.envelope) n++;
    }
    eq(n, m.exists, 'FETCH 1:* over TLS + COMPRESS');
    await c.logout();
}

async function main() {
    const fixtures = [];
    for (let i = 0; i < TOTAL; i++) fixtures.push(fixture(i));
    const steps = [
        ['seed', () => seed(fixtures)],
        ['initial sync', null],
        ['resync', null],
        ['idle', idlePush],
        ['move', moveToTrash],
        ['tls', tlsCompress]
    ];
    let state = null;
    for (const [name, fn] of steps) {
        const t0 = Date.now();
        try {
            if (name === 'initial sync') state = await initialSync(fixtures);
            else if (name === 'resync') {
                if (state) await resync(state, fixtures);
                else check(false, 'resync', 'no state from the initial sync');
            } else await fn();
        } catch (err) {
            check(false, 'scenario ' + name + ' threw', (err && err.stack || String(err)).split('\n').slice(0, 4).join(' | ') +
                (err && err.responseText ? ' | server: ' + err.responseText : ''));
        }
        console.log('# ' + name + ': ' + (Date.now() - t0) + ' ms');
    }
    console.log('imapflow: ' + passed + ' passed, ' + failed + ' failed');
    process.exit(failed ? 1 : 0);
}

main();
