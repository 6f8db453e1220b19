//! Images written by skiff-fat pass `fsck.fat -n` (skipped with a note when dosfstools
//! is not installed).

mod common;

use common::*;
use skiff_fat::FatType;
use skiff_fs::OpenFlags;

#[test]
fn fsck_clean_after_mixed_workload() {
    for t in [FatType::Fat12, FatType::Fat16, FatType::Fat32] {
        let size = if t == FatType::Fat32 { 40 } else { 8 };
        let disk = disk(size, Some(t));
        let env = Env::new(&disk);
        env.mkdir("/mnt/dir");
        env.mkdir("/mnt/dir/sub");
        env.write_file("/mnt/dir/sub/a long name.txt", &pattern(12_345, 1));
        for i in 0..40 {
            env.write_file(&format!("/mnt/dir/f{i}"), &pattern(i * 700, i as u32));
        }
        for i in (0..40).step_by(3) {
            env.unlink(&format!("/mnt/dir/f{i}")).unwrap();
        }
        env.write_file("/mnt/x", &pattern(99_999, 2));
        let open = env.open("/mnt/x", OpenFlags::O_RDONLY).unwrap();
        env.unlink("/mnt/x").unwrap();
        env.rename("/mnt/dir/sub", "/mnt/moved", 0).unwrap();
        let f = env.create("/mnt/grown");
        f.truncate(50_000).unwrap();
        f.pwrite(b"tail", 70_000).unwrap();
        f.truncate(60_001).unwrap();
        drop(f);
        env.unmount();
        drop(open);
        let (ok, out) = fsck(&disk.image(), &format!("mixed-{t:?}"));
        assert!(ok, "{t:?} fsck.fat:\n{out}");
        assert!(!out.contains("Dirty bit"), "{t:?}: {out}");
    }
}
