//! Parse throughput on TSBS `cpu-only` shaped data: ours vs `influxdb-line-protocol` (the
//! reference server's parser). Both fully consume every line and touch every element.
//!
//! The data is generated here (same shape as the project's bench generator: 10 tags, 10
//! integer fields `usage_*=NNi`, nanosecond timestamps, all hosts per timestamp), so the
//! bench needs nothing outside this crate.

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const HOSTS: usize = 100;
const EPOCHS: usize = 100; // 10,000 lines

const REGIONS: [&str; 9] = [
    "us-east-1",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
];
const DATACENTERS: [&[&str]; 9] = [
    &["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"],
    &["us-west-1a", "us-west-1b"],
    &["us-west-2a", "us-west-2b", "us-west-2c"],
    &["eu-west-1a", "eu-west-1b", "eu-west-1c"],
    &["eu-central-1a", "eu-central-1b"],
    &["ap-southeast-1a", "ap-southeast-1b"],
    &["ap-southeast-2a", "ap-southeast-2b"],
    &["ap-northeast-1a", "ap-northeast-1c"],
    &["sa-east-1a", "sa-east-1b", "sa-east-1c"],
];
const OSES: [&str; 3] = ["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"];
const ARCHS: [&str; 2] = ["x64", "x86"];
const TEAMS: [&str; 4] = ["SF", "NYC", "LON", "CHI"];
const ENVS: [&str; 3] = ["production", "staging", "test"];
const FIELDS: [&str; 10] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// TSBS `cpu-only` lines: per host a fixed tag set, per field a clamped random walk.
fn tsbs_cpu(hosts: usize, epochs: usize) -> String {
    let mut rng = SplitMix64(123);
    let prefixes: Vec<String> = (0..hosts)
        .map(|h| {
            let r = rng.below(REGIONS.len());
            let dc = DATACENTERS[r][rng.below(DATACENTERS[r].len())];
            format!(
                "cpu,hostname=host_{h},region={},datacenter={dc},rack={},os={},arch={},team={},\
                 service={},service_version={},service_environment={} ",
                REGIONS[r],
                rng.below(100),
                OSES[rng.below(3)],
                ARCHS[rng.below(2)],
                TEAMS[rng.below(4)],
                rng.below(20),
                rng.below(2),
                ENVS[rng.below(3)],
            )
        })
        .collect();
    let mut state: Vec<[i64; 10]> = (0..hosts)
        .map(|_| std::array::from_fn(|_| rng.below(10_001) as i64))
        .collect();
    let start_ns: i64 = 1_451_606_400_000_000_000; // 2016-01-01T00:00:00Z
    let mut out = String::new();
    for e in 0..epochs {
        let ts = start_ns + e as i64 * 10_000_000_000;
        for (h, prefix) in prefixes.iter().enumerate() {
            out.push_str(prefix);
            for (k, field) in FIELDS.iter().enumerate() {
                let step = (rng.next() & 0xff) as i64 + ((rng.next() >> 8) & 0xff) as i64 - 255;
                let v = (state[h][k] + step).clamp(0, 10_000);
                state[h][k] = v;
                if k > 0 {
                    out.push(',');
                }
                out.push_str(&format!("{field}={}i", v / 100));
            }
            out.push_str(&format!(" {ts}\n"));
        }
    }
    out
}

fn consume_ours(body: &str) -> u64 {
    let mut acc = 0u64;
    for line in gnomon_line_protocol::parse_lines(body) {
        let line = line.expect("valid line");
        acc += line.measurement.len() as u64;
        for (k, v) in &line.tags {
            acc += (k.len() + v.len()) as u64;
        }
        for (k, v) in &line.fields {
            acc += k.len() as u64;
            acc = acc.wrapping_add(match v {
                gnomon_line_protocol::FieldValue::Integer(i) => *i as u64,
                gnomon_line_protocol::FieldValue::UInteger(u) => *u,
                gnomon_line_protocol::FieldValue::Float(f) => f.to_bits(),
                gnomon_line_protocol::FieldValue::Boolean(b) => u64::from(*b),
                gnomon_line_protocol::FieldValue::String(s) => s.len() as u64,
            });
        }
        acc = acc.wrapping_add(line.timestamp.unwrap_or(0) as u64);
        acc += matches!(line.measurement, Cow::Borrowed(_)) as u64;
    }
    acc
}

fn consume_reference(body: &str) -> u64 {
    use influxdb_line_protocol::FieldValue;
    let mut acc = 0u64;
    for line in influxdb_line_protocol::parse_lines(body) {
        let line = line.expect("valid line");
        acc += line.series.measurement.len() as u64;
        for (k, v) in line.series.tag_set.iter().flatten() {
            acc += (k.len() + v.len()) as u64;
        }
        for (k, v) in &line.field_set {
            acc += k.len() as u64;
            acc = acc.wrapping_add(match v {
                FieldValue::I64(i) => *i as u64,
                FieldValue::U64(u) => *u,
                FieldValue::F64(f) => f.to_bits(),
                FieldValue::Boolean(b) => u64::from(*b),
                FieldValue::String(s) => s.len() as u64,
            });
        }
        acc = acc.wrapping_add(line.timestamp.unwrap_or(0) as u64);
        acc += 1;
    }
    acc
}

fn bench(c: &mut Criterion) {
    let body = tsbs_cpu(HOSTS, EPOCHS);
    let lines = body.lines().count();
    // Both parsers see the same data and agree on it.
    assert_eq!(
        consume_ours(&body) - lines as u64,
        consume_reference(&body) - lines as u64
    );
    eprintln!(
        "TSBS cpu: {lines} lines, {} bytes, {:.1} bytes/line",
        body.len(),
        body.len() as f64 / lines as f64
    );

    let mut group = c.benchmark_group("parse_tsbs_cpu");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("gnomon", |b| b.iter(|| consume_ours(black_box(&body))));
    group.bench_function("influxdb_line_protocol", |b| {
        b.iter(|| consume_reference(black_box(&body)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
