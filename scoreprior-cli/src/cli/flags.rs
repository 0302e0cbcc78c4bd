//! The library names a setting of a run by its path in the run description
//! (`prior.time_floor`, `problem.x_true`); the command line names it by its flag
//! (`--time-floor`, `--x-true`). The one table between the two is read from the flags'
//! declaration itself (clap's view of the library's types), so it cannot drift.

use clap::{Args, Command};
use scoreprior::experiment::{
    FlowOptions, ObjectiveOptions, OptimOptions, OutputOptions, PriorOptions, ProblemOptions,
};

/// `(path, flag)` of every setting of [`DpiSettings`](scoreprior::experiment::DpiSettings):
/// `("prior.time_floor", "--time-floor")`, longest paths first (so that a path is never
/// replaced inside a longer one).
pub fn setting_flags() -> Vec<(String, String)> {
    let groups: [(&str, Command); 6] = [
        ("prior", PriorOptions::augment_args(Command::new("prior"))),
        ("problem", ProblemOptions::augment_args(Command::new("problem"))),
        ("optim", OptimOptions::augment_args(Command::new("optim"))),
        ("flow", FlowOptions::augment_args(Command::new("flow"))),
        ("objective", ObjectiveOptions::augment_args(Command::new("objective"))),
        ("output", OutputOptions::augment_args(Command::new("output"))),
    ];
    let mut table: Vec<(String, String)> = groups
        .iter()
        .flat_map(|(group, cmd)| {
            cmd.get_arguments()
                .filter_map(|a| a.get_long().map(|long| (format!("{group}.{}", a.get_id()), format!("--{long}"))))
                .collect::<Vec<_>>()
        })
        .collect();
    table.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    table
}

/// `message` with each setting path that stands as a whole word replaced by its flag.
///
/// `"prior.time_floor_from must be in [prior.time_floor, 1)"` becomes
/// `"--time-floor-from must be in [--time-floor, 1)"`.
pub fn with_flags(message: &str) -> String {
    let mut out = message.to_string();
    for (path, flag) in setting_flags() {
        out = replace_word(&out, &path, &flag);
    }
    out
}

/// `text` with every `word` that is not part of a longer identifier replaced by `by`.
fn replace_word(text: &str, word: &str, by: &str) -> String {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + word.len()..].chars().next();
        out.push_str(&rest[..i]);
        // A path's last component (`data/prior.mean`) is a file name, not a setting.
        let in_path = before.is_some_and(|c| c == '/' || c == '\\');
        if in_path || before.is_some_and(is_ident) || after.is_some_and(|c| is_ident(c) && c != '.') {
            out.push_str(word);
        } else {
            out.push_str(by);
        }
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_flags() {
        assert_eq!(
            with_flags("prior.time_floor_from must be 0 (off) or in [prior.time_floor, 1), got 2"),
            "--time-floor-from must be 0 (off) or in [--time-floor, 1), got 2"
        );
        assert_eq!(
            with_flags("give exactly one of problem.y and problem.x_true."),
            "give exactly one of --y and --x-true."
        );
        // Not a setting's path: left as it is.
        assert_eq!(with_flags("myprior.time_floor and prior.time_floors"), "myprior.time_floor and prior.time_floors");
        // A file whose name is a setting's path keeps its name.
        assert_eq!(with_flags("prior.mean data/prior.mean: not found"), "--mean data/prior.mean: not found");
        let table = setting_flags();
        assert!(table.contains(&("prior.solver".into(), "--solver".into())));
        assert!(table.contains(&("output.checkpoint_every".into(), "--checkpoint-every".into())));
        assert!(table.contains(&("prior.adjoint_grid_solver".into(), "--adjoint-grid-solver".into())));
        assert_eq!(table.len(), 66, "every flag of dpi but --seed");
    }
}
