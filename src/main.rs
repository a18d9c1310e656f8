//! The `ferrogate` binary (the same command line as the Python console script).

fn main() {
    std::process::exit(ferrogate::cli::run(std::env::args().collect()));
}
