// Parser benchmark, Node side: the ORIGINAL drachtio-srf SipMessage on the same corpus and the
// same work per message as benchmarks/parser_bench.py: parse, read From, To, Via, CSeq, Call-ID
// and (when present) Contact as parsed headers, serialise back.
// usage: node parser_bench.js CORPUS_JSON SECONDS WARMUP_SECONDS [MODE]
// MODE: full (default), parse (constructor only), headers (parse + parsed headers, no toString)
// prints: RESULT <messages per second> <serialised bytes per corpus pass> <CPU us per message>
'use strict';
const fs = require('fs');
const SipMessage = require('drachtio-srf/lib/sip-parser/message');

const [corpusPath, seconds = '3', warmup = '1', mode = 'full'] = process.argv.slice(2);
const corpus = JSON.parse(fs.readFileSync(corpusPath, 'utf8'));
const HEADERS = ['From', 'To', 'Via', 'CSeq', 'Call-ID'];

function pass() {
  let bytes = 0;
  for (const text of corpus) {
    const msg = new SipMessage(text);
    if (mode === 'parse') continue;
    for (const h of HEADERS) msg.getParsedHeader(h);
    if (msg.has('Contact')) msg.getParsedHeader('Contact');
    if (mode === 'headers') continue;
    bytes += msg.toString().length;
  }
  return bytes;
}

function run(limit) {
  let n = 0, bytes = 0;
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const stop = start + BigInt(Math.round(limit * 1e9));
  let now = start;
  while (now < stop) {
    bytes = pass();
    n += corpus.length;
    now = process.hrtime.bigint();
  }
  const cpu = process.cpuUsage(cpu0);     // user + system microseconds of the whole process
  return [n / (Number(now - start) / 1e9), bytes, (cpu.user + cpu.system) / n];
}

run(parseFloat(warmup));
const [rate, bytes, cpuUs] = run(parseFloat(seconds));
console.log(`RESULT ${rate.toFixed(1)} ${bytes} ${cpuUs.toFixed(3)}`);
