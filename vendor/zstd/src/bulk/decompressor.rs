use crate::map_error_code;

#[cfg(feature = "experimental")]
use std::convert::TryInto;
use std::io;
use std::mem::ManuallyDrop;
use std::sync::Mutex;
use zstd_safe;

/// Allows to decompress independently multiple blocks of data.
///
/// This reduces memory usage compared to calling `decompress` multiple times.
pub struct Decompressor<'a> {
    // Gnomon patch: contexts are reused through `IDLE_CONTEXTS`. Making one executes CPUID
    // (zstd checks for BMI2 every time), which traps to the hypervisor in a VM, and
    // parquet-rs makes a decompressor for every column chunk it reads.
    context: ManuallyDrop<zstd_safe::DCtx<'a>>,
    /// False once a dictionary or a parameter was set: such a context is freed, not reused.
    reusable: bool,
}

/// Contexts of dropped decompressors that never had a dictionary or a parameter, reset.
static IDLE_CONTEXTS: Mutex<Vec<zstd_safe::DCtx<'static>>> = Mutex::new(Vec::new());

/// At most this many idle contexts are kept (about 160 KiB each).
const MAX_IDLE_CONTEXTS: usize = 16;

impl Default for Decompressor<'_> {
    fn default() -> Self {
        let idle = IDLE_CONTEXTS.lock().ok().and_then(|mut idle| idle.pop());
        Self {
            context: ManuallyDrop::new(idle.unwrap_or_default()),
            reusable: true,
        }
    }
}

impl Drop for Decompressor<'_> {
    fn drop(&mut self) {
        // SAFETY: `self.context` is taken once, here, and never used again.
        let mut context = unsafe { ManuallyDrop::take(&mut self.context) };
        if !self.reusable
            || context
                .reset(zstd_safe::ResetDirective::SessionAndParameters)
                .is_err()
        {
            return;
        }
        // SAFETY: a reusable context never referenced a dictionary (the only borrow its
        // lifetime stands for), and the reset cleared its session and parameters, so it
        // is a context like a new one.
        let context: zstd_safe::DCtx<'static> =
            unsafe { std::mem::transmute(context) };
        if let Ok(mut idle) = IDLE_CONTEXTS.lock() {
            if idle.len() < MAX_IDLE_CONTEXTS {
                idle.push(context);
            }
        }
    }
}

impl Decompressor<'static> {
    /// Creates a new zstd decompressor.
    pub fn new() -> io::Result<Self> {
        Self::with_dictionary(&[])
    }

    /// Creates a new zstd decompressor, using the given dictionary.
    pub fn with_dictionary(dictionary: &[u8]) -> io::Result<Self> {
        let mut decompressor = Self::default();

        decompressor.set_dictionary(dictionary)?;

        Ok(decompressor)
    }
}

impl<'a> Decompressor<'a> {
    /// Creates a new decompressor using an existing `DecoderDictionary`.
    ///
    /// Note that using a dictionary means that compression will need to use
    /// the same dictionary.
    pub fn with_prepared_dictionary<'b>(
        dictionary: &'a crate::dict::DecoderDictionary<'b>,
    ) -> io::Result<Self>
    where
        'b: 'a,
    {
        let mut decompressor = Self::default();

        decompressor.set_prepared_dictionary(dictionary)?;

        Ok(decompressor)
    }

    /// Changes the dictionary used by this decompressor.
    ///
    /// Will affect future compression jobs.
    ///
    /// Note that using a dictionary means that compression will need to use
    /// the same dictionary.
    pub fn set_dictionary(&mut self, dictionary: &[u8]) -> io::Result<()> {
        if !dictionary.is_empty() {
            self.reusable = false;
        }
        self.context
            .load_dictionary(dictionary)
            .map_err(map_error_code)?;

        Ok(())
    }

    /// Changes the dictionary used by this decompressor.
    ///
    /// Note that using a dictionary means that compression will need to use
    /// the same dictionary.
    pub fn set_prepared_dictionary<'b>(
        &mut self,
        dictionary: &'a crate::dict::DecoderDictionary<'b>,
    ) -> io::Result<()>
    where
        'b: 'a,
    {
        self.reusable = false;
        self.context
            .ref_ddict(dictionary.as_ddict())
            .map_err(map_error_code)?;

        Ok(())
    }

    /// Deompress a single block of data to the given destination buffer.
    ///
    /// Returns the number of bytes written, or an error if something happened
    /// (for instance if the destination buffer was too small).
    pub fn decompress_to_buffer<C: zstd_safe::WriteBuf + ?Sized>(
        &mut self,
        source: &[u8],
        destination: &mut C,
    ) -> io::Result<usize> {
        self.context
            .decompress(destination, source)
            .map_err(map_error_code)
    }

    /// Decompress a block of data, and return the result in a `Vec<u8>`.
    ///
    /// The decompressed data should be at most `capacity` bytes,
    /// or an error will be returned.
    pub fn decompress(
        &mut self,
        data: &[u8],
        capacity: usize,
    ) -> io::Result<Vec<u8>> {
        let capacity =
            Self::upper_bound(data).unwrap_or(capacity).min(capacity);
        let mut buffer = Vec::with_capacity(capacity);
        self.decompress_to_buffer(data, &mut buffer)?;
        Ok(buffer)
    }

    /// Sets a decompression parameter for this decompressor.
    pub fn set_parameter(
        &mut self,
        parameter: zstd_safe::DParameter,
    ) -> io::Result<()> {
        self.reusable = false;
        self.context
            .set_parameter(parameter)
            .map_err(map_error_code)?;
        Ok(())
    }

    crate::decoder_parameters!();

    /// Get an upper bound on the decompressed size of data, if available
    ///
    /// This can be used to pre-allocate enough capacity for `decompress_to_buffer`
    /// and is used by `decompress` to ensure that it does not over-allocate if
    /// you supply a large `capacity`.
    ///
    /// Will return `None` if the upper bound cannot be determined or is larger than `usize::MAX`
    ///
    /// Note that unless the `experimental` feature is enabled, this will always return `None`.
    pub fn upper_bound(_data: &[u8]) -> Option<usize> {
        #[cfg(feature = "experimental")]
        {
            let bound = zstd_safe::decompress_bound(_data).ok()?;
            bound.try_into().ok()
        }
        #[cfg(not(feature = "experimental"))]
        {
            None
        }
    }
}

fn _assert_traits() {
    fn _assert_send<T: Send>(_: T) {}

    _assert_send(Decompressor::new());
}
