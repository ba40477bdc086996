//! `greeter eval-video` through the real binary: a clip made by ffmpeg from a demo photo, the
//! same ffmpeg source, tracker and decisions as `serve`, a scratch gallery from folders.

mod common;

use std::process::{Command, Output};

use common::*;

fn eval_video(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greeter"))
        .arg("--json")
        .arg("eval-video")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_clip_names_the_enrolled_guest_once_and_no_stranger() {
    let dir = tempfile::tempdir().unwrap();
    // sample1 shows three people; only the middle one is enrolled
    let clip = make_clip(dir.path(), "sample1.jpg", 3);
    let people = dir.path().join("people");
    make_people_dir(
        &people,
        &[("guest", "sample1.jpg", 1), ("other", "sample2.jpg", 0)],
    );
    let truth = dir.path().join("truth.csv");
    std::fs::write(&truth, "# who, from, to\nguest,0.0,3.0\n").unwrap();

    let report = ok_json(eval_video(&[
        clip.as_os_str(),
        "--gallery".as_ref(),
        people.as_os_str(),
        "--truth".as_ref(),
        truth.as_os_str(),
    ]));
    let announcements = report["announcements"].as_array().unwrap();
    assert_eq!(announcements.len(), 1, "{report:#}");
    assert_eq!(announcements[0]["name"], "guest");
    assert!(announcements[0]["score"].as_f64().unwrap() > 0.9);
    assert!(announcements[0]["t"].as_f64().unwrap() < 1.5, "{report:#}");
    assert_eq!(report["right"], 1);
    assert_eq!(report["wrong"], 0);
    assert_eq!(report["missed"].as_array().unwrap().len(), 0);
    assert!(report["first_announcement_s"]["guest"].as_f64().is_some());
    // three faces in view all along: three tracks, one named; the strangers stay unknown
    let tracks = report["tracks"].as_array().unwrap();
    let named: Vec<_> = tracks.iter().filter(|t| !t["name"].is_null()).collect();
    assert_eq!(named.len(), 1, "{report:#}");
    assert!(tracks.len() >= 3, "{report:#}");
    // 3 s at the default 5 analysed frames a second
    assert_eq!(report["frames_analysed"], 15, "{report:#}");
    assert!(report["realtime_factor"].as_f64().unwrap() > 0.0);
    assert!(report["analysed_fps"].as_f64().unwrap() > 0.0);
    assert!(report["stage_ms"]["detect"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_video_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let people = dir.path().join("people");
    make_people_dir(&people, &[("guest", "sample1.jpg", 1)]);
    let missing = dir.path().join("nowhere.mp4");
    let not_video = dir.path().join("notes.mp4");
    std::fs::write(&not_video, "not a video").unwrap();
    for (video, expected) in [(&missing, "nowhere.mp4"), (&not_video, "notes.mp4")] {
        let out = eval_video(&[video.as_os_str(), "--gallery".as_ref(), people.as_os_str()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("cannot play") && err.contains(expected),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let clip = make_clip(dir.path(), "sample1.jpg", 1);
    let truth = dir.path().join("truth.csv");
    std::fs::write(&truth, "guest,2.0,1.0\n").unwrap();
    let out = eval_video(&[
        clip.as_os_str(),
        "--gallery".as_ref(),
        people.as_os_str(),
        "--truth".as_ref(),
        truth.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("line 1") && err.contains("name,start_s,end_s"),
        "{err}"
    );
}
