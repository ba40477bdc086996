//! The fuzz targets' entry points (`greeter::fuzz`) on stable, in every `cargo test`: every input
//! a fuzzing run found to crash (`fuzz/regressions/<target>/`, each one a bug fixed since), then
//! valid seeds and a few thousand deterministic mutations of them. A panic fails the test; a
//! hang fails it by the suite's time. The real fuzzing is `cargo +nightly fuzz run` (README).

mod common;

use std::path::Path;

use greeter::fuzz;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 5] = [
    ("image", |d| drop(fuzz::image(d))),
    ("enrolment_form", |d| drop(fuzz::enrolment_form(d))),
    ("checkout_body", |d| drop(fuzz::checkout_body(d))),
    ("catalogue", |d| drop(fuzz::catalogue(d))),
    ("mjpeg_stream", |d| {
        fuzz::mjpeg_stream(d);
    }),
];

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([200, 100, 50]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn form(fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
    let b = fuzz::BOUNDARY;
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{b}\r\nContent-Disposition: form-data; name=\"p\"; filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    body
}

/// Valid inputs of each target: what the mutations start from.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let small = jpeg(16, 16);
    match target {
        "image" => vec![small, png(8, 8), jpeg(40, 24)],
        "enrolment_form" => vec![form(
            &[("name", "Zhou Min"), ("consent", "signed at till 3"), ("birth_year", "1990")],
            &small,
        )],
        "checkout_body" => vec![
            [b"\x00".as_slice(), br#"{"customer_id":7,"basket":[{"sku":"DR-1","quantity":1,"unit_price_cents":59900}],"camera":"till"}"#].concat(),
            [b"\x01".as_slice(), &form(&[("customer_id", "7"), ("basket", r#"[{"sku":"DR-1","quantity":2,"unit_price_cents":100}]"#)], &small)].concat(),
        ],
        "catalogue" => vec![
            b"sku,name,category,price,arrival_date,stock,styles,colours\nDR-1,White dress,dress,599,2026-09-01,3,simple;casual,white\n".to_vec(),
            br#"[{"sku":"DR-2","name":"Black dress","category":"dress","price":699,"arrival_date":"2026-09-02","stock":1}]"#.to_vec(),
        ],
        "mjpeg_stream" => {
            let part = |jpeg: &[u8]| {
                [
                    format!("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len()).as_bytes(),
                    jpeg,
                    b"\r\n",
                ]
                .concat()
            };
            vec![[&[7u8][..], &part(&small), &part(&jpeg(24, 8))].concat()]
        }
        _ => unreachable!("{target}"),
    }
}

/// xorshift: the same mutations on every run, so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// Flipped bytes, cuts, repeated and dropped spans, and the marker bytes the parsers look for.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len());
        match rng.below(6) {
            0 => data[at] = rng.below(256) as u8,
            1 => data.truncate(at),
            2 => {
                let end = (at + rng.below(64)).min(data.len());
                let span = data[at..end].to_vec();
                data.splice(at..at, span);
            }
            3 => {
                let end = (at + rng.below(64)).min(data.len());
                data.drain(at..end);
            }
            4 => {
                let marker: &[u8] = [
                    &[0xFFu8, 0xD8, 0xFF][..],
                    &[0xFF, 0xD9],
                    b"\r\n--",
                    b"\"",
                    b",",
                ][rng.below(5)];
                data.splice(at..at, marker.iter().copied());
            }
            _ => data.iter_mut().skip(at).take(8).for_each(|b| *b = 0xFF),
        }
        if data.is_empty() {
            break;
        }
    }
    data
}

#[test]
fn inputs_that_once_crashed_a_target_no_longer_do() {
    let root = common::root().join("fuzz/regressions");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let dir = root.join(name);
        if !dir.is_dir() {
            continue;
        }
        for file in greeter::files::sorted_entries(&dir, Path::is_file).unwrap() {
            target(&std::fs::read(&file).unwrap());
            replayed += 1;
        }
    }
    println!("{replayed} saved crash inputs replayed");
}

/// With `GREETER_FUZZ_SEEDS=fuzz/corpus` the seeds are also written there, one folder per
/// target, for `cargo fuzz run` to start from (README, "Fuzzing").
#[test]
fn every_target_survives_its_seeds_and_their_mutations() {
    let export = std::env::var_os("GREETER_FUZZ_SEEDS").map(std::path::PathBuf::from);
    for (name, target) in TARGETS {
        let seeds = seeds(name);
        if let Some(dir) = &export {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            for (i, seed) in seeds.iter().enumerate() {
                std::fs::write(dir.join(name).join(format!("seed-{i}")), seed).unwrap();
            }
        }
        for seed in &seeds {
            target(seed);
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..1500 {
            let seed = &seeds[rng.below(seeds.len())];
            target(&mutate(seed, &mut rng));
        }
    }
}

/// The seeds are what they claim, so the mutations start from the paths that matter: the
/// images decode, the forms and bodies are read whole, the catalogue rows import, the stream
/// holds its two frames.
#[test]
fn the_seeds_reach_the_parsers_deep_paths() {
    let image = seeds("image");
    assert_eq!(fuzz::image(&image[0]), Ok((16, 16)));
    assert_eq!(fuzz::image(&image[1]), Ok((8, 8)));
    assert_eq!(
        fuzz::enrolment_form(&seeds("enrolment_form")[0]),
        Ok(("Zhou Min".to_owned(), 1))
    );
    let checkout = seeds("checkout_body");
    assert_eq!(fuzz::checkout_body(&checkout[0]), Ok(1));
    assert_eq!(fuzz::checkout_body(&checkout[1]), Ok(1));
    let catalogue = seeds("catalogue");
    assert_eq!(fuzz::catalogue(&catalogue[0]), Ok((1, 0)));
    assert_eq!(fuzz::catalogue(&catalogue[1]), Ok((1, 0)));
    assert_eq!(fuzz::mjpeg_stream(&seeds("mjpeg_stream")[0]), 2);
}
