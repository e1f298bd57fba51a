//! Files a user or a rule pack names (lookup tables, macros, rules, key files): read
//! only when they are regular files, and never past a size cap. A device (`/dev/zero`)
//! would be read until memory runs out, a FIFO would block forever, a directory is an
//! error anyway; each is refused before it is opened. What these files hold is never
//! echoed into a message beyond what [`redact`] lets through.

use std::io::Read;
use std::path::Path;

/// The bytes of the regular file `path`, refused when it holds more than `cap` bytes.
pub fn read(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    // `stat` before `open`: opening a FIFO for reading waits for a writer.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    if meta.len() > cap {
        return Err(too_large(cap));
    }
    // The size a file reports is not always what it holds (`/proc` files report 0).
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(cap));
    }
    Ok(bytes)
}

/// [`read`], as UTF-8 text without NUL bytes (`/proc/self/environ` is not a text file).
pub fn read_text(path: &Path, cap: u64) -> std::io::Result<String> {
    let bytes = read(path, cap)?;
    if bytes.contains(&0) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it is not a text file (it holds NUL bytes)",
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

fn not_regular(meta: &std::fs::Metadata) -> std::io::Error {
    let what = if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file (a device, a pipe or a socket)"
    };
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("it is {what}"))
}

fn too_large(cap: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("it holds more than {} MiB", cap.div_ceil(1 << 20)),
    )
}

/// A message from a reader of a user's file with what it quotes of the file taken out:
/// text between quotes or backticks becomes `…`, control characters go, and the whole
/// is cut to 200 characters.
pub fn redact(message: &str) -> String {
    let mut out = String::new();
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if matches!(c, '\'' | '"' | '`') => {
                out.push(c);
                open = Some(c);
            }
            None if c.is_control() => out.push(' '),
            None => out.push(c),
        }
        if out.chars().count() >= 200 {
            out.push('…');
            break;
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out
}

/// Whether a name read from a user's file (a column header) may be shown in a
/// message: short, and only letters, digits, spaces, `_`, `-` and `.`.
pub fn showable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_pipes_and_directories_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        for path in ["/dev/zero", "/dev/null"] {
            let e = read(Path::new(path), 1 << 20).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{path}: {e}");
        }
        assert!(
            read(dir.path(), 1 << 20)
                .unwrap_err()
                .to_string()
                .contains("directory")
        );
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let e = read(&fifo, 1 << 20).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        let big = dir.path().join("big.csv");
        std::fs::write(&big, vec![b'a'; 3 << 20]).unwrap();
        assert!(
            read(&big, 1 << 20)
                .unwrap_err()
                .to_string()
                .contains("more than 1 MiB")
        );
        assert_eq!(read(&big, 4 << 20).unwrap().len(), 3 << 20);
    }

    #[test]
    fn redaction_keeps_the_words_and_drops_the_quotes_contents() {
        assert_eq!(
            redact("Error while parsing value 'SECRET=1' for column 0. Row data: \"x,y\""),
            "Error while parsing value '…' for column 0. Row data: \"…\""
        );
        assert_eq!(redact("a\0b"), "a b");
        assert!(redact(&"x".repeat(500)).chars().count() <= 201);
        assert!(showable("user_email") && showable("Display Name"));
        assert!(!showable("AWS_SECRET_ACCESS_KEY=abc") && !showable("[default]"));
    }
}
