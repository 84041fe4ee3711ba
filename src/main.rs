//! The `aegisir` binary; everything it does lives in the library's [`aegisir::cli`].

fn main() -> std::process::ExitCode {
    aegisir::cli::main()
}
