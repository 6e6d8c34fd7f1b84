// Benchmark UAS app on the ORIGINAL drachtio-srf: answers every INVITE with 200 + SDP via
// createUAS and keeps the dialog until either side hangs up. Same behaviour and control protocol
// as benchmarks/apps/uas_app.py, so the two can be measured under the same load.
//
// usage: node uas_app.js ADMIN_PORT [SECRET]
// stdout: "READY" once connected; one reply line per stdin command:
//   stats   -> STATS {"created":..,"destroyed":..,"failed":..,"open":..,"library_dialogs":..}
//   gc      -> GC (runs a full collection when node was started with --expose-gc)
//   release [k] -> RELEASING n (hangs up k, default all, open dialogs from the app side; a BYE
//                  that fails still counts the dialog as gone, in release_errors)
//   quit    -> exits
'use strict';
const Srf = require('drachtio-srf');
const readline = require('readline');

const [port, secret = 'cymru'] = process.argv.slice(2);
const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n' +
  'm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n';

const srf = new Srf();
const open = new Set();
let created = 0, destroyed = 0, failed = 0, releaseErrors = 0;
const releasing = new Set();

srf.connect({host: '127.0.0.1', port: parseInt(port, 10), secret});
srf.on('connect', (err) => {
  if (err) { console.log('ERROR connect', err.message); process.exit(1); }
  console.log('READY');
});
srf.on('error', (err) => console.error('srf error', err.message));

srf.invite(async(req, res) => {
  try {
    const dlg = await srf.createUAS(req, res, {localSdp: SDP});
    created++;
    open.add(dlg);
    dlg.on('destroy', () => { destroyed++; open.delete(dlg); });
  } catch (err) {
    failed++;
  }
});

readline.createInterface({input: process.stdin}).on('line', (line) => {
  const cmd = line.trim();
  if (cmd === 'stats') {
    const lib = srf._dialogs ? srf._dialogs.size : -1;
    console.log('STATS ' + JSON.stringify({created, destroyed, failed, open: open.size, library_dialogs: lib,
      release_errors: releaseErrors}));
  } else if (cmd === 'gc') {
    if (global.gc) global.gc();
    console.log('GC');
  } else if (cmd.startsWith('release')) {
    const k = parseInt(cmd.split(' ')[1] || '0', 10) || open.size;
    const batch = [];
    for (const dlg of open) {
      if (batch.length >= k) break;
      if (!releasing.has(dlg)) batch.push(dlg);
    }
    const gone = (dlg) => { releasing.delete(dlg); if (open.delete(dlg)) destroyed++; };
    for (const dlg of batch) {
      releasing.add(dlg);
      dlg.destroy().then(() => gone(dlg)).catch(() => { releaseErrors++; gone(dlg); });
    }
    console.log('RELEASING ' + batch.length);
  } else if (cmd === 'quit') {
    process.exit(0);
  }
});
