//! The patched `zstd` (vendor/zstd, see the workspace manifest) reuses decompression contexts
//! and makes compression contexts on first use. Parquet files are read and written through
//! it, so a context that kept a dictionary or a parameter from its last user would corrupt
//! or refuse reads: these tests check that a reused context behaves like a new one.

use zstd::bulk::{Compressor, Decompressor};

/// A payload that compresses, different for every `seed`.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Runs of repeated text with noise: real matches for zstd to find.
            if i % 64 < 48 {
                b"cpu,hostname=host_1 usage_user=42i "[i % 35]
            } else {
                (state >> 56) as u8
            }
        })
        .collect()
}

/// Decompressors made now (taking the contexts of those just dropped) decode `frame`.
fn assert_new_decompressors_decode(frame: &[u8], data: &[u8]) {
    for _ in 0..4 {
        let decoded = Decompressor::new()
            .unwrap()
            .decompress(frame, data.len())
            .unwrap();
        assert_eq!(decoded, data);
    }
}

#[test]
fn decompressors_made_one_after_another_decode_every_frame() {
    let mut compressor = Compressor::new(3).unwrap();
    for seed in 0..200 {
        let data = payload(seed, 1000 + seed as usize * 37);
        let frame = compressor.compress(&data).unwrap();
        let decoded = Decompressor::new()
            .unwrap()
            .decompress(&frame, data.len())
            .unwrap();
        assert_eq!(decoded, data, "seed {seed}");
    }
}

#[test]
fn a_dictionary_does_not_outlive_its_decompressor() {
    let dictionary = payload(7, 4096);
    let data = payload(8, 20_000);
    let with_dictionary = Compressor::with_dictionary(3, &dictionary)
        .unwrap()
        .compress(&data)
        .unwrap();
    let plain = Compressor::new(3).unwrap().compress(&data).unwrap();

    let mut decompressor = Decompressor::with_dictionary(&dictionary).unwrap();
    assert_eq!(
        decompressor
            .decompress(&with_dictionary, data.len())
            .unwrap(),
        data
    );
    drop(decompressor);

    for _ in 0..4 {
        let mut decompressor = Decompressor::new().unwrap();
        assert!(
            decompressor
                .decompress(&with_dictionary, data.len())
                .is_err(),
            "a frame that needs a dictionary decoded without one"
        );
        assert_eq!(decompressor.decompress(&plain, data.len()).unwrap(), data);
    }
}

#[test]
fn a_parameter_does_not_outlive_its_decompressor() {
    // 1 MiB at level 19 needs a window far above 2^10 bytes.
    let data = payload(9, 1 << 20);
    let frame = Compressor::new(19).unwrap().compress(&data).unwrap();

    // One-shot decoding does not enforce the window limit, so this only shows that a
    // context given a parameter is not handed on in a state that refuses frames.
    let small = payload(12, 500);
    let small_frame = Compressor::new(3).unwrap().compress(&small).unwrap();
    let mut small_window = Decompressor::new().unwrap();
    small_window.window_log_max(10).unwrap();
    assert_eq!(
        small_window.decompress(&small_frame, small.len()).unwrap(),
        small
    );
    drop(small_window);

    assert_new_decompressors_decode(&frame, &data);
}

#[test]
fn a_failed_frame_leaves_no_state_behind() {
    let data = payload(10, 50_000);
    let frame = Compressor::new(3).unwrap().compress(&data).unwrap();
    let mut truncated = Decompressor::new().unwrap();
    assert!(truncated
        .decompress(&frame[..frame.len() / 2], data.len())
        .is_err());
    drop(truncated);
    assert_new_decompressors_decode(&frame, &data);
}

#[test]
fn decompressors_on_many_threads_decode_their_own_frames() {
    let threads: Vec<_> = (0..4u64)
        .map(|thread| {
            std::thread::spawn(move || {
                let mut compressor = Compressor::new(1).unwrap();
                for i in 0..150 {
                    let data = payload(thread * 1000 + i, 3000 + i as usize * 11);
                    let frame = compressor.compress(&data).unwrap();
                    let decoded = Decompressor::new()
                        .unwrap()
                        .decompress(&frame, data.len())
                        .unwrap();
                    assert_eq!(decoded, data, "thread {thread}, frame {i}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn a_compressor_made_lazily_keeps_the_level_it_was_given() {
    let data = payload(11, 1 << 18);
    let fast = Compressor::new(1).unwrap().compress(&data).unwrap();
    let strong = Compressor::new(19).unwrap().compress(&data).unwrap();
    assert!(
        strong.len() < fast.len(),
        "level 19 ({} bytes) did not beat level 1 ({} bytes)",
        strong.len(),
        fast.len()
    );
    let mut relevelled = Compressor::new(1).unwrap();
    relevelled.set_compression_level(19).unwrap();
    assert_eq!(relevelled.compress(&data).unwrap().len(), strong.len());
}
