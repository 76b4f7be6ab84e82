//! `apiserver`: see `apiserver --help`.

fn main() -> std::process::ExitCode {
    apiserver::cli::main(std::env::args_os())
}
