"""Storage tiers: the tiering job interleaved with itself, crops, account deletion and a data
export."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from core.activities.tables import Activity
from core.config import load_settings
from core.storage import cold, tiers
from core.storage.points import archive, count_points, delete_range, stored_track
from tests.conftest import database_of_its_own
from tests.core.storage.tiers_common import hot_count, new_activity, synthetic, user_of  # noqa: F401


class Killed(BaseException):
    pass


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_runs_at_once_keep_the_crop_made_between_them(kind, tmp_path, data_dir):
    """Worker and command line both archive X: B reads X's rows, X is cropped, A archives the
    cropped X; B's stale file is never the one X names, so the crop holds."""
    with database_of_its_own(kind, tmp_path, "rv_stale") as Session:
        x = new_activity(Session, synthetic(600))

        def meanwhile(step):
            if step == "read":
                with Session() as s, s.begin():
                    assert delete_range(s, x, synthetic().t[0], synthetic().t[99]) == 100
                assert tiers.archive_activity(Session, archive(), x) == 500  # run A

        tiers.archive_activity(Session, archive(), x, meanwhile)  # run B
        with Session() as s:
            assert count_points(s, x) == 500, "the crop's 100 removed points came back from B's stale file"


def test_a_second_run_killed_while_writing_leaves_the_archived_file_whole(tmp_path, data_dir, monkeypatch):
    """B read X while hot; A archives X; B is killed while writing its own file: X's file,
    a different one, is whole."""
    with database_of_its_own("sqlite", tmp_path, "rv_partial") as Session:
        x = new_activity(Session, synthetic(600))
        real = cold.pq.write_table

        def torn_write(table, where, filesystem=None, **kw):
            buf = io.BytesIO()
            real(table, buf, **kw)
            with filesystem.open_output_stream(where) as out:
                out.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            raise Killed("killed while writing")

        def meanwhile(step):
            if step == "read":
                assert tiers.archive_activity(Session, archive(), x) == 600  # run A
                monkeypatch.setattr(cold.pq, "write_table", torn_write)

        with pytest.raises(Killed):
            tiers.archive_activity(Session, archive(), x, meanwhile)  # run B
        monkeypatch.setattr(cold.pq, "write_table", real)
        with Session() as s:
            assert len(stored_track(s, s.get(Activity, x))) == 600  # raises ArchiveFileError


def test_an_activity_archived_while_an_export_is_built_is_exported_whole(tmp_path, data_dir, monkeypatch):
    """An export lists the activities, one is archived meanwhile: its points come from its file."""
    from core.jobs import export, export_zip

    with database_of_its_own("sqlite", tmp_path, "rv_export") as Session:
        x = new_activity(Session, synthetic(600))
        real_sections = export_zip._sections

        def sections(s, user):
            out = real_sections(s, user)
            assert tiers.archive_activity(Session, archive(), x) == 600  # the hourly job meanwhile
            return out

        monkeypatch.setattr(export_zip, "_sections", sections)
        buf = io.BytesIO()
        export.write_export(Session, user_of(Session, x), buf)
        names = zipfile.ZipFile(buf).namelist()
        assert f"activities/{x}.csv" in names, "the export silently lost every point of the activity"


def test_rows_left_by_a_run_killed_after_the_mark_go_at_the_next_run(tmp_path, data_dir, monkeypatch):
    """Rows left in the table by a run killed after it marked the activity archived are deleted
    by the next run."""
    monkeypatch.setattr(tiers, "CHUNK", 100)
    with database_of_its_own("sqlite", tmp_path, "rv_left") as Session:
        x = new_activity(Session, synthetic(600))

        def stop(step):
            if step == "marked":
                raise Killed(step)

        with pytest.raises(Killed):
            tiers.archive_activity(Session, archive(), x, stop)
        assert hot_count(Session, x) == 500
        tiers.run(Session, load_settings())
        tiers.run(Session, load_settings())
        assert hot_count(Session, x) == 0, "orphan rows of a cold activity are never cleaned up"


def test_an_account_deleted_while_the_job_archives_leaves_nothing_on_disk(tmp_path, data_dir):
    from core.jobs.deletion import delete_account

    with database_of_its_own("sqlite", tmp_path, "rv_delete") as Session:
        x = new_activity(Session, synthetic(600))
        user_id = user_of(Session, x)

        def meanwhile(step):
            if step == "read":  # rows read; the account goes before the file is written
                delete_account(Session, user_id, settle_s=0.0)

        tiers.archive_activity(Session, archive(), x, meanwhile)
        tiers.run(Session, load_settings())  # the next hourly run too
        assert not Path(archive().athlete_folder(user_id)).exists(), \
            "a deleted athlete's GPS track is still in the archive"


def test_a_point_added_to_an_archived_activity_brings_it_back_whole(tmp_path, data_dir):
    """A late fix for an archived activity: the activity comes back to the table first, so
    the fix joins its 600 points, and every read sees 601."""
    from core.storage.points import count_points, insert_new_keys

    with database_of_its_own("sqlite", tmp_path, "rv_restore") as Session:
        x = new_activity(Session, synthetic(600))
        assert tiers.archive_activity(Session, archive(), x) == 600
        with Session() as s, s.begin():
            stored = insert_new_keys(s, [(x, 10_000, synthetic().t[-1] + 1, 46.1, 14.1, None, None, None, None),
                                         (x, 5, 0.0, 0.0, 0.0, None, None, None, None)])  # seq 5 is a resend
        assert stored == {(x, 10_000)}
        with Session() as s:
            a = s.get(Activity, x)
            assert (a.points_tier, a.cold_file) == ("hot", None) and count_points(s, x) == 601
        assert hot_count(Session, x) == 601


def test_an_archived_activity_cropped_comes_back_before_the_crops_transaction(tmp_path, data_dir, monkeypatch):
    """The crop's own write transaction finds the activity back in the table: its points
    went in before, a chunk per short transaction, not while the crop held the write lock."""
    from sqlalchemy import select

    from core.anomaly.moderation import crop_activity
    from core.storage import points

    with database_of_its_own("sqlite", tmp_path, "rv_crop") as Session:
        x = new_activity(Session, synthetic(600))
        assert tiers.archive_activity(Session, archive(), x) == 600
        cold_inside = []
        real = points.make_hot

        def watched(s, activity_id):
            cold_inside.append(s.scalar(select(Activity.points_tier).where(Activity.id == activity_id)) == "cold")
            return real(s, activity_id)

        monkeypatch.setattr(points, "make_hot", watched)
        t = synthetic().t
        crop_activity(Session, x, user_of(Session, x), float(t[100]), float(t[199]), None)
        assert cold_inside == [False]
        with Session() as s:
            assert count_points(s, x) == 500 and s.get(Activity, x).points_tier == "hot"
