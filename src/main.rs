//! The `ferrogate` binary (the same command line as the Python console script).

// jemalloc rather than glibc's malloc: under concurrent load glibc's malloc/free were ~18% of the
// server's instructions and its arenas kept their peak after the load stopped. jemalloc costs
// fewer instructions per request and, with the settings below, hands unused pages back to the
// system a second or so after a burst. Only this executable uses it; the Python extension
// allocates with whatever the interpreter uses.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's `malloc_conf` (a C string pointer it reads at start-up): purge freed pages after
/// about a second, from a background thread, so memory returns even when the server goes idle.
#[repr(transparent)]
pub struct AllocatorConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a static, immutable C string.
unsafe impl Sync for AllocatorConf {}

#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: AllocatorConf =
    AllocatorConf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

fn main() {
    std::process::exit(ferrogate::cli::run(std::env::args().collect()));
}
