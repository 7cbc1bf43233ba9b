//! Seeded generators of nasty line protocol, shared by the oracle and never-panics tests.
#![allow(dead_code)]

/// xorshift64* — small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den < num
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Pieces names are made of: mostly plain, some escapes, delimiters and odd characters.
const PLAIN_ATOMS: &[&str] = &[
    "a", "b", "cpu", "host", "x", "Z", "_", "0", "9", "é", "ẞ", "日本", "🦀", "m", "t", "f", "T",
    "F", "i", "u", "e", "-", ".", "'", "+",
];
const NASTY_ATOMS: &[&str] = &[
    "\\ ", "\\,", "\\=", "\\\\", "\\", "\\n", "\\t", "\\\"", "\\é", "\"", "=", ",", " ", "\t", "#",
    "\0", "\r", "\n", "\\\n", "\\\t", "\\\\\\", "==", ",,", "  ",
];

/// Pieces of names that are valid in every element kind (as long as the name does not end
/// in an escaped backslash, handled in `name`).
const CLEAN_ATOMS: &[&str] = &[
    "a", "b", "cpu", "host", "x", "Z", "_", "0", "9", "é", "ẞ", "日本", "🦀", "m", "t", "f", "-",
    ".", "'", "+", "\\ ", "\\,", "\\=", "\\q", "\\n", "\\é", "\\\\x",
];

/// Valid field values of every type.
const CLEAN_VALUES: &[&str] = &[
    "1",
    "-1",
    "0",
    "-0",
    "-0.0",
    "1i",
    "-1i",
    "01i",
    "-0i",
    "1u",
    "0u",
    "007u",
    "9223372036854775807i",
    "-9223372036854775808i",
    "18446744073709551615u",
    "1.5",
    "-1.5",
    "1e5",
    "1E+5",
    "1e-5",
    "1.5e3",
    "-1.0e+3",
    "1e400",
    "-1e400",
    "1e-400",
    "t",
    "T",
    "true",
    "True",
    "TRUE",
    "f",
    "F",
    "false",
    "False",
    "FALSE",
    "\"\"",
    "\"abc\"",
    "\"a b,c=d\"",
    "\"a\\\"b\"",
    "\"a\\\\\"",
    "\"a\\nb\"",
    "\"x\ny\"",
    "\"é\\\"\"",
    "\"tab\there\"",
    "\"#\"",
    "00000000000000000000000000001i",
    "0.1",
    "123456789012345678",
    "1234567890123456",
    "4.9e-324",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "\"\\\\\"",
];

/// Field values: every type, edge numbers, near misses.
const VALUES: &[&str] = &[
    "1",
    "-1",
    "0",
    "-0",
    "-0.0",
    "1i",
    "-1i",
    "01i",
    "-0i",
    "1u",
    "0u",
    "007u",
    "-1u",
    "9223372036854775807i",
    "9223372036854775808i",
    "-9223372036854775808i",
    "-9223372036854775809i",
    "18446744073709551615u",
    "18446744073709551616u",
    "1.5",
    "-1.5",
    "1.",
    ".5",
    "-.5",
    "1e5",
    "1E+5",
    "1e-5",
    "1.5e3",
    "-1.0e+3",
    "1.5e3i",
    "1e3i",
    "1.5u",
    "1e",
    "1e+",
    "1.5e",
    "1.e5",
    "1e400",
    "-1e400",
    "1e-400",
    "0x10",
    "NaN",
    "inf",
    "+1",
    "+1i",
    "t",
    "T",
    "true",
    "True",
    "TRUE",
    "f",
    "F",
    "false",
    "False",
    "FALSE",
    "tru",
    "tRUE",
    "FAlse",
    "truee",
    "yes",
    "t1",
    "\"\"",
    "\"abc\"",
    "\"a b,c=d\"",
    "\"a\\\"b\"",
    "\"a\\\\\"",
    "\"a\\nb\"",
    "\"x\ny\"",
    "\"unterminated",
    "\"é\\\"\"",
    "\"a\\\\\\\"b\"",
    "\"\\\"",
    "\"tab\there\"",
    "\"#\"",
    "1i2",
    "1ii",
    "1.5.5",
    "1_000",
    "-",
    "-i",
    "",
    " 1",
    "\"a\"b\"",
    "00000000000000000000000000001i",
    "0.1",
    "123456789012345678",
    "1234567890123456",
    "4.9e-324",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
];

const TIMESTAMPS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "123",
    "1.0",
    "+5",
    "abc",
    "-",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999",
    "1725629157696678000",
    "5x",
    "1 2",
    "1e9",
];

const SEPARATORS: &[&str] = &[" ", " ", " ", " ", "  ", "   ", "\t", "", " \t", "\t "];
const TRAILERS: &[&str] = &[
    "", "", "", "", "", " ", "  ", "\r", " #c", "x", ",", ", 5", "\t", " \r",
];
const LEADERS: &[&str] = &["", "", "", "", "", " ", "  ", "\t", " \t "];

/// A name that is valid as measurement, tag key, tag value and field key.
pub fn clean_name(rng: &mut Rng) -> String {
    let n = 1 + rng.below(4);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(rng.pick(CLEAN_ATOMS));
    }
    s
}

pub fn name(rng: &mut Rng, nasty: bool) -> String {
    let n = 1 + rng.below(4);
    let mut s = String::new();
    for _ in 0..n {
        if nasty && rng.chance(1, 4) {
            s.push_str(rng.pick(NASTY_ATOMS));
        } else {
            s.push_str(rng.pick(PLAIN_ATOMS));
        }
    }
    if rng.chance(1, 50) {
        s.clear(); // empty name
    }
    s
}

pub fn value(rng: &mut Rng) -> String {
    value_from(rng, VALUES, false)
}

fn value_from(rng: &mut Rng, list: &[&str], clean: bool) -> String {
    match rng.below(10) {
        0 => format!("{}i", rng.next_u64() as i64 >> rng.below(64)),
        1 => format!("{}u", rng.next_u64() >> rng.below(64)),
        2 => {
            let f = f64::from_bits(rng.next_u64());
            if f.is_finite() {
                if rng.chance(1, 2) {
                    format!("{f}")
                } else {
                    format!("{f:e}")
                }
            } else {
                "1".into()
            }
        }
        3 => format!("{}", (rng.next_u64() % 100_000) as f64 / 100.0),
        4 if !clean => {
            // a string with random content from nasty atoms
            let mut s = String::from("\"");
            for _ in 0..rng.below(5) {
                s.push_str(if rng.chance(1, 3) {
                    rng.pick(NASTY_ATOMS)
                } else {
                    rng.pick(PLAIN_ATOMS)
                });
            }
            if rng.chance(9, 10) {
                s.push('"');
            }
            s
        }
        _ => rng.pick(list).to_string(),
    }
}

/// A valid line (unless it repeats a tag key, 1 in 20 tags), with escapes, Unicode, every
/// value type, and edge numbers.
pub fn clean_line(rng: &mut Rng) -> String {
    let mut s = String::new();
    s.push_str(rng.pick(&["", "", "", " ", "\t "]));
    let mut m = clean_name(rng);
    if m.starts_with('#') {
        m.insert(0, 'm');
    }
    s.push_str(&m);
    let mut keys: Vec<String> = Vec::new();
    for i in 0..[0, 1, 2, 3, 10][rng.below(5)] {
        let key = if i > 0 && rng.chance(1, 20) {
            keys[rng.below(keys.len())].clone()
        } else {
            clean_name(rng)
        };
        s.push(',');
        s.push_str(&key);
        s.push('=');
        s.push_str(&clean_name(rng));
        keys.push(key);
    }
    s.push_str(rng.pick(&[" ", " ", " ", "  "]));
    for i in 0..[1, 1, 2, 3, 10][rng.below(5)] {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&clean_name(rng));
        s.push('=');
        s.push_str(&value_from(rng, CLEAN_VALUES, true));
    }
    if rng.chance(2, 3) {
        s.push_str(rng.pick(&[" ", "  "]));
        s.push_str(&format!("{}", rng.next_u64() as i64 >> rng.below(64)));
        s.push_str(rng.pick(&["", "", " ", "   "]));
    }
    s
}

/// One line, mostly well-formed with a sprinkling of damage.
pub fn line(rng: &mut Rng) -> String {
    if rng.chance(1, 2) {
        return clean_line(rng);
    }
    let nasty = rng.chance(1, 3);
    let mut s = String::new();
    s.push_str(rng.pick(LEADERS));
    s.push_str(&name(rng, nasty));
    let ntags = [0, 0, 1, 1, 2, 3, 5, 10][rng.below(8)];
    let mut keys: Vec<String> = Vec::new();
    for i in 0..ntags {
        s.push(',');
        let key = if i > 0 && rng.chance(1, 20) {
            keys[rng.below(keys.len())].clone() // duplicate tag key
        } else {
            name(rng, nasty)
        };
        s.push_str(&key);
        keys.push(key);
        if !rng.chance(1, 40) {
            s.push('=');
        }
        s.push_str(&name(rng, nasty));
    }
    if rng.chance(1, 60) {
        s.push(',');
    }
    s.push_str(rng.pick(SEPARATORS));
    let nfields = [1, 1, 1, 2, 3, 4, 10, 0][rng.below(8)];
    for i in 0..nfields {
        if i > 0 {
            s.push(',');
        }
        let nasty_key = nasty && rng.chance(1, 2);
        s.push_str(&name(rng, nasty_key));
        if !rng.chance(1, 40) {
            s.push('=');
        }
        s.push_str(&value(rng));
    }
    if rng.chance(2, 3) {
        s.push_str(rng.pick(SEPARATORS));
        if rng.chance(1, 2) {
            s.push_str(&format!("{}", rng.next_u64() as i64 >> rng.below(64)));
        } else {
            s.push_str(rng.pick(TIMESTAMPS));
        }
    }
    s.push_str(rng.pick(TRAILERS));
    s
}

/// Random "soup" over the characters that matter to the grammar.
pub fn soup(rng: &mut Rng) -> String {
    const CHARS: &[char] = &[
        ' ', ' ', ' ', ',', ',', '=', '=', '"', '\\', '\\', '\n', '\t', '\r', '#', 'a', 'b', 'm',
        '1', '0', '9', '-', '.', 'e', 'E', 'i', 'u', 't', 'f', 'T', 'F', 'é', '\0', '+',
    ];
    let n = rng.below(40);
    (0..n).map(|_| rng.pick(CHARS)).collect()
}

/// A line damaged by 1–3 character-level edits.
pub fn mutated(rng: &mut Rng) -> String {
    const CHARS: &[char] = &[
        ' ', ',', '=', '"', '\\', '\n', '\t', '\r', '#', 'a', '1', '-', '.', 'e', 'i', 'u', 't',
        'é', '\0',
    ];
    let mut chars: Vec<char> = line(rng).chars().collect();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(chars.len() + 1);
        match rng.below(4) {
            0 => chars.insert(at, rng.pick(CHARS)),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            2 if at < chars.len() => chars[at] = rng.pick(CHARS),
            _ => {
                let end = (at + rng.below(6)).min(chars.len());
                let piece: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, piece);
            }
        }
    }
    chars.into_iter().collect()
}

/// A body of several lines (well-formed, soup or mutated), with blank and comment lines,
/// `\n` or `\r\n` terminators.
pub fn body(rng: &mut Rng) -> String {
    const FILLERS: &[&str] = &[
        "",
        "  ",
        "\t",
        " \t ",
        "# comment",
        "  # indented",
        "#a=\"b",
        "# x \\",
        "#",
        "\r",
    ];
    let n = 1 + rng.below(5);
    let crlf = rng.chance(1, 10);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push_str(if crlf { "\r\n" } else { "\n" });
        }
        match rng.below(12) {
            0 => s.push_str(rng.pick(FILLERS)),
            1 => s.push_str(&soup(rng)),
            2 | 3 => s.push_str(&mutated(rng)),
            _ => s.push_str(&line(rng)),
        }
    }
    if rng.chance(1, 2) {
        s.push('\n');
    }
    s
}

/// Hand-written nasty inputs: LINE_PROTOCOL.md §9 and friends.
pub const NASTY: &[&str] = &[
    "m f=1",
    "m f=1i",
    "m f=1u",
    "m f=1 123",
    "m f=1 -1",
    "m f=1 1.0",
    "m f=1 1 2",
    "m f=1 ",
    "m f=1 123   ",
    "  measurement  a=1i  123  ",
    "m\tf=1",
    "m f=1\r",
    "m f=1\r\nm g=2\r\n",
    "\r",
    "m",
    "foo 1234",
    "m f= 1",
    "m f=.5",
    "m f=NaN",
    ",t=1 f=1",
    "m, f=1",
    "m,t= f=1",
    "m,t=a,b f=1",
    "m,t=a=b f=1",
    "m,a,b=1 f=1",
    "m a,b=1",
    "m\\ x f=1",
    "m\\,x f=1",
    "m\\ f=1",
    "m\\\\ f=1",
    "\"m\" f=1",
    "m,t=\"a b\" f=1",
    "m f=\"a\\\"b\"",
    "m f=\"a\\nb\"",
    "m f=\"x\ny\" 5",
    "m f=\"\"",
    "m f=9223372036854775808i",
    "m f=18446744073709551615u",
    "m f=-1u",
    "m f=1.5e3i",
    "m f=1E5",
    "m f=1e+5",
    "m f=-1.0e+3",
    "m f=tru",
    "m f=t,g=F,h=TRUE",
    "m f=1,",
    "m f=1,g=2,",
    "m f=1,f=2",
    "m,t=1,t=2 f=1",
    "m,t=v f=1i,t=2",
    "m time=1",
    "cpu f=1.5\ncpu f=1i",
    "m f=1 99999999999999999999",
    "m f=1 9223372036854775807",
    "# comment\n\nm f=1",
    "ẞ,ü=ö ä=1",
    "J,#",
    "J,",
    "0,,=",
    "testmeasure, bar=1i",
    "testmeasure,foo\\=\\,baz= bar=1i",
    "testmeasure,foo=,baz= bar=1i",
    "metrics,bananas=,platanos=great value=1.000000 1725629157696678000",
    "testmeasure,foo=f bar=1i,baz=",
    "\u{1b}# /",
    ":\u{14}\\",
    "m f=1,,g=2",
    "m f=1, 123",
    "m f=1,g=2, 123",
    "m f=1 #c",
    "# note \\\nm f=1",
    "m\\\nx f=1",
    "m,t=\"a f=1\nm g=2",
    "m f=\"a\\\"\nb\"",
    "m a,b=1,c=\"x\ny\"",
    "  a=\"\nb\"",
    " m,t=\"x f=1\nm2 g=2\"",
    "#a=\"b\nm f=1\nm g=\"c\"",
    "m\0 f=1",
    "\0m f=1",
    "m,t\0=v\0 f\0=\"\0\"",
    "m f=1\t5",
    "m f=1 -",
    "m f=1 +5",
    "m,t=v\tf=1",
    "m,t\tk=v f=1",
    "m,\tk=v f=1",
    "m,t=v,",
    "m f=yes",
    "m f=t1",
    "m f=1.",
    "m f=1.e5",
    "m f=0x10",
    "m f=1e",
    "m f=1_000",
    "zz v=1 ééééééééééé",
    "zz\tabcdefghijklmnop v=1",
    "m f=\"abc",
    "m f=\"abc\\\"",
    "m f=1,g=\"abc",
    "a\\=b f=1",
    "a\\\tb f=1",
    "m,a\\,b=1,a,b=2 f=1",
    "m f\\\\=1",
    "m f=1,g\\",
    "m,t=v\\",
    "m\\",
    "m f=-9223372036854775809i",
    "m f=-9223372036854775808i",
    "m f=1 -9223372036854775808",
    "m f=1 -9223372036854775809",
    "m f=1e400",
    "m f=-0",
    "\n\n\n",
    "",
    " ",
    "#",
    "\\",
    "\"",
    "m \"",
    "m f=\"",
    "m f=\"\\",
    "m f=1 1\n",
    "m,=",
    "m,a=",
    "m,a=b",
    "m,a=b ",
    "m,a=b c",
    "m,a=b c=",
    "m,a=b c=d",
    "m c=1 \\",
    "\t\t\tm f=1",
    "m   \t f=1",
    "m f=1,\\",
    "m f=1,=2",
];
