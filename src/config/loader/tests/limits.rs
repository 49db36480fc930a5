//! The limits of one config: a value's size, the expanded size, the files and bytes it
//! includes, nesting.

use super::{load_err, load_plain, Dir};
use crate::config::limits::{
    MAX_EXPANDED_BYTES, MAX_INCLUDED_BYTES, MAX_INCLUDED_FILES, MAX_INCLUDE_NESTING,
    MAX_VALUE_BYTES,
};
use crate::config::{load, LoadOptions};

#[test]
fn the_placeholder_bomb_is_refused_at_the_value_limit() {
    let dir = Dir::new();
    let mut text = String::from("[uwsgi]\na0 = 0123456789\n");
    for level in 1..=12 {
        text.push_str(&format!(
            "a{level} = {}\n",
            format!("%(a{})", level - 1).repeat(10)
        ));
    }
    let file = dir.write("bomb.ini", &text);
    let err = load_err(&file, &LoadOptions::default());
    assert_eq!(
        err,
        format!(
            "{}:6: option \"a4\": expands to more than 65536 bytes (limit of one value)",
            file.display()
        )
    );
}

/// `[uwsgi]`, `big` of `size` bytes, then `copies` options of `%(big)`.
fn copies_of_a_big_value(size: usize, copies: usize) -> String {
    format!(
        "[uwsgi]\nbig = {}\n{}",
        "x".repeat(size),
        "copy = %(big)\n".repeat(copies)
    )
}

#[test]
fn the_whole_config_is_refused_past_the_expanded_limit() {
    let dir = Dir::new();
    // Each option costs its key and value; `big` costs 3 + size, each copy 4 + size.
    let size = MAX_VALUE_BYTES - 4;
    let copies = (MAX_EXPANDED_BYTES - (3 + size)) / MAX_VALUE_BYTES;
    let fits = dir.write("fits.ini", &copies_of_a_big_value(size, copies));
    assert_eq!(load_plain(&fits).get_all("copy").count(), copies);
    let over = dir.write("over.ini", &copies_of_a_big_value(size, copies + 1));
    let err = load_err(&over, &LoadOptions::default());
    assert!(
        err.ends_with(&format!(
            ":{}: option \"copy\": the config expands to more than {MAX_EXPANDED_BYTES} bytes (limit of one config)",
            copies + 3
        )),
        "{err}"
    );
}

#[test]
fn includes_are_counted_up_to_the_limit() {
    let dir = Dir::new();
    dir.write("one.ini", "[uwsgi]\none = 1\n");
    let includes = |n| format!("[uwsgi]\n{}", "include = one.ini\n".repeat(n));
    let fits = dir.write("fits.ini", &includes(MAX_INCLUDED_FILES));
    assert_eq!(load_plain(&fits).get_all("one").count(), MAX_INCLUDED_FILES);
    let over = dir.write("over.ini", &includes(MAX_INCLUDED_FILES + 1));
    assert_eq!(
        load_err(&over, &LoadOptions::default()),
        format!(
            "{}:{}: option \"include\": reads more than 64 files (limit of includes and @(file) of one config)",
            over.display(),
            MAX_INCLUDED_FILES + 2
        )
    );
    // vassals-include files count too, after the config's own.
    let opts = LoadOptions {
        includes: vec![dir.path().join("one.ini")],
        ..LoadOptions::default()
    };
    let err = load(&fits, &opts).unwrap_err().to_string();
    assert!(
        err.ends_with(
            "one.ini: reads more than 64 files (limit of includes and @(file) of one config)"
        ),
        "{err}"
    );
}

#[test]
fn included_bytes_are_counted_before_they_are_parsed() {
    let dir = Dir::new();
    // A comment line: bytes to read, nothing to keep.
    let third = MAX_INCLUDED_BYTES / 3;
    dir.write(
        "third.ini",
        &format!("[uwsgi]\n#{}\n", "x".repeat(third - 10)),
    );
    let rest = MAX_INCLUDED_BYTES - 3 * third;
    let file = dir.write(
        "app.ini",
        "[uwsgi]\ninclude = third.ini\ninclude = third.ini\ninclude = third.ini\nlast = @(rest.txt)\n",
    );
    dir.write("rest.txt", &"z".repeat(rest));
    assert_eq!(load_plain(&file).get("last").unwrap().value.len(), rest);
    dir.write("rest.txt", &"z".repeat(rest + 1));
    assert_eq!(
        load_err(&file, &LoadOptions::default()),
        format!(
            "{}:5: option \"last\": reads more than {MAX_INCLUDED_BYTES} bytes of files (limit of includes and @(file) of one config)",
            file.display()
        )
    );
}

#[test]
fn nesting_too_deep_names_the_file_and_line() {
    let dir = Dir::new();
    let file = dir.write("deep.xml", &format!("<uwsgi>\n{}", "<a>".repeat(13_000)));
    assert_eq!(
        load_err(&file, &LoadOptions::default()),
        format!("{}:2: nesting deeper than 64 levels", file.display())
    );
}

#[test]
fn includes_nest_up_to_the_limit() {
    let dir = Dir::new();
    // level0.ini includes level1.ini ... up to level{n}.ini, which includes nothing.
    let chain = |n: usize| {
        for level in 0..n {
            dir.write(
                &format!("level{level}.ini"),
                &format!("[uwsgi]\ninclude = level{}.ini\n", level + 1),
            );
        }
        dir.write(&format!("level{n}.ini"), "[uwsgi]\nlast = 1\n");
        dir.path().join("level0.ini")
    };
    assert!(load_plain(&chain(MAX_INCLUDE_NESTING))
        .get("last")
        .is_some());
    let err = load_err(&chain(MAX_INCLUDE_NESTING + 1), &LoadOptions::default());
    assert!(
        err.ends_with(&format!(
            "level{MAX_INCLUDE_NESTING}.ini:2: option \"include\": includes nested deeper than 16 levels"
        )),
        "{err}"
    );
}
