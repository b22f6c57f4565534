//! Where the shared Anthropic fixtures live for this repository's tests: recorded API traffic
//! and external price tables, kept **beside** the repository (`../shared/data/
//! anthropic-fixtures/`), never inside a crate, so no published crate needs them.

use std::path::PathBuf;

/// Set this environment variable (CI does) to make a missing fixtures directory fail the tests
/// that need it instead of skipping them.
pub const REQUIRE_FIXTURES_ENV: &str = "CLAUDE_TOWER_REQUIRE_FIXTURES";

/// The shared fixtures directory, or `None` (with a note on stderr) when it is absent: from a
/// published crate's tarball, or a clone without `shared/` beside it. With
/// [`REQUIRE_FIXTURES_ENV`] set, absence panics instead.
///
/// # Panics
/// When the directory is absent and [`REQUIRE_FIXTURES_ENV`] is set.
#[must_use]
#[expect(
    clippy::print_stderr,
    reason = "a skipped test says why on the test harness's stderr"
)]
pub fn shared_fixtures() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/anthropic-fixtures");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os(REQUIRE_FIXTURES_ENV).is_none(),
        "{REQUIRE_FIXTURES_ENV} is set but the fixtures are not at {}",
        dir.display()
    );
    eprintln!(
        "skipped: the shared fixtures are not at {} (they sit beside the repository and are \
         not part of a published crate)",
        dir.display()
    );
    None
}
