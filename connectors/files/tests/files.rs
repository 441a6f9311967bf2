//! The files connector against the real fixture folder and temporary files.

use chrono::{DateTime, Utc};
use contactbridge_connector::{
    Checkpoint, Collection, CollectionKind, Connector, ErrorKind, NoKnownVersions, Record, RecordId, Rejected,
    Snapshot, SyncRequest, VecSink,
};
use contactbridge_files::FilesConnector;
use contactbridge_formats::Window;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../formats/tests/fixtures")
}

fn window_2012() -> Window {
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339("2012-08-01T00:00:00Z").unwrap().into();
    Window::around(at, 365, 1000)
}

async fn sync(connector: &FilesConnector, collection: &Collection, since: Option<Checkpoint>) -> VecSink {
    let mut sink = VecSink::default();
    let request = SyncRequest { collection, since, known: &NoKnownVersions };
    connector.sync(request, &mut sink).await.expect("sync succeeds");
    sink
}

#[tokio::test]
async fn fixture_folder_syncs_every_file() {
    let connector = FilesConnector::new(fixtures()).with_window(window_2012());
    connector.check().await.unwrap();
    let collections = connector.collections().await.unwrap();
    let books: Vec<&str> =
        collections.iter().filter(|c| c.kind == CollectionKind::AddressBook).map(|c| c.id.as_str()).collect();
    assert_eq!(
        books,
        vec![
            "John_Doe_ANDROID.vcf",
            "John_Doe_EVOLUTION.vcf",
            "John_Doe_GMAIL.vcf",
            "John_Doe_IPHONE.vcf",
            "John_Doe_MS_OUTLOOK.vcf",
            "gmail-list.vcf",
            "outlook-2007.vcf",
            "rfc6350-example.vcf"
        ]
    );
    assert_eq!(collections.iter().filter(|c| c.kind == CollectionKind::Calendar).count(), 11);
    let gmail = collections.iter().find(|c| c.id == "gmail-list.vcf").unwrap();
    assert_eq!(gmail.name, "gmail-list");

    let (mut contacts, mut events, mut occurrences) = (0, 0, 0);
    for collection in &collections {
        let sink = sync(&connector, collection, None).await;
        assert_eq!(sink.applied.len(), 1, "{}", collection.id);
        let set = &sink.applied[0];
        assert_eq!(set.snapshot, Some(Snapshot::WHOLE));
        assert!(set.checkpoint.is_some());
        // A daily event over this 1,365-day window has more occurrences than
        // are kept per event: kept (cut) and reported.
        let cut = |r: &contactbridge_connector::Rejected| {
            collection.id == "daily_recur.ics" && r.reason.contains("occurrences nearest to now")
        };
        assert!(set.rejected.iter().all(cut), "{}: {:?}", collection.id, set.rejected);
        for record in &set.upserts {
            match record {
                Record::Contact(_) => contacts += 1,
                Record::Event(e) => {
                    events += 1;
                    occurrences += e.occurrences.len();
                }
                other => panic!("unexpected record {other:?}"),
            }
        }
    }
    // 6 Android + Evolution + Gmail + iPhone + Outlook + 3 gmail-list + Outlook 2007 + RFC 6350.
    assert_eq!(contacts, 15);
    // daily, day-long, duration, 2 birthdays, minimal, only-dtstart, rfc, timezone-from-file.
    assert_eq!(events, 9);
    assert!(occurrences > 100, "recurring events expanded: {occurrences}");
}

#[tokio::test]
async fn record_ids_are_uids_or_positions() {
    let connector = FilesConnector::new(fixtures().join("gmail-list.vcf"));
    let collections = connector.collections().await.unwrap();
    assert_eq!(collections.len(), 1);
    assert_eq!((collections[0].id.as_str(), collections[0].name.as_str()), ("gmail-list.vcf", "gmail-list"));
    let sink = sync(&connector, &collections[0], None).await;
    let ids: Vec<&str> = sink.upserts().map(|r| r.id().as_str()).collect();
    assert_eq!(ids, vec!["card-1", "card-2", "card-3"]);

    let connector = FilesConnector::new(fixtures().join("daily_recur.ics")).with_window(window_2012());
    let collections = connector.collections().await.unwrap();
    assert_eq!(collections[0].kind, CollectionKind::Calendar);
    let sink = sync(&connector, &collections[0], None).await;
    let ids: Vec<&str> = sink.upserts().map(|r| r.id().as_str()).collect();
    assert_eq!(ids, vec!["tgh9qho17b07pk2n2ji3gluans@google.com"]);
}

#[tokio::test]
async fn malformed_cards_and_duplicate_uids_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let text = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:Old A\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:no name\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:New A\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:B\r\n";
    std::fs::write(dir.path().join("sub/bad.vcf"), text).unwrap();
    std::fs::write(dir.path().join("sub/.hidden.vcf"), text).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a card").unwrap();
    let connector = FilesConnector::new(dir.path());
    let collections = connector.collections().await.unwrap();
    assert_eq!(collections.len(), 1);
    assert_eq!((collections[0].id.as_str(), collections[0].name.as_str()), ("sub/bad.vcf", "bad"));
    let sink = sync(&connector, &collections[0], None).await;
    let names: Vec<(&str, &str)> = sink
        .upserts()
        .map(|r| match r {
            Record::Contact(c) => (c.id.as_str(), c.display_name.as_str()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(names, vec![("a", "New A")]);
    let rejected: Vec<Rejected> = sink.rejected().cloned().collect();
    let reject = |id: &str, reason: &str| Rejected { id: RecordId::new(id), reason: reason.into() };
    assert_eq!(
        rejected,
        vec![
            reject("sub/bad.vcf#2", "the card has no name (FN or N), organisation, email or phone number"),
            reject("sub/bad.vcf#1", "duplicate UID"),
            reject("sub/bad.vcf#4", "missing END:VCARD (the card is cut off)"),
        ]
    );
}

#[tokio::test]
async fn unchanged_file_delivers_nothing_and_a_change_delivers_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("team.vcf");
    std::fs::write(&path, "BEGIN:VCARD\nVERSION:3.0\nUID:1\nFN:One\nEND:VCARD\n").unwrap();
    let connector = FilesConnector::new(dir.path());
    let collection = connector.collections().await.unwrap().remove(0);
    let first = sync(&connector, &collection, None).await;
    let checkpoint = first.checkpoint().cloned().unwrap();

    let again = sync(&connector, &collection, Some(checkpoint.clone())).await;
    assert!(again.applied.is_empty(), "unchanged file: no change set");

    std::fs::write(&path, "BEGIN:VCARD\nVERSION:3.0\nUID:2\nFN:Two\nEND:VCARD\n").unwrap();
    let changed = sync(&connector, &collection, Some(checkpoint.clone())).await;
    assert_eq!(changed.applied.len(), 1);
    assert_eq!(changed.applied[0].snapshot, Some(Snapshot::WHOLE));
    assert_ne!(changed.checkpoint(), Some(&checkpoint));
    assert_eq!(changed.upserts().map(|r| r.id().as_str()).collect::<Vec<_>>(), vec!["2"]);
}

#[tokio::test]
async fn calendar_checkpoint_holds_while_the_window_stays() {
    let connector = FilesConnector::new(fixtures().join("minimal.ics")).with_window(window_2012());
    let collection = connector.collections().await.unwrap().remove(0);
    let first = sync(&connector, &collection, None).await;
    let again = sync(&connector, &collection, first.checkpoint().cloned()).await;
    assert!(again.applied.is_empty());
}

#[tokio::test]
async fn missing_or_wrong_paths_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let connector = FilesConnector::new(&missing);
    let err = connector.check().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.to_string().contains("nowhere does not exist"), "{err}");
    assert_eq!(connector.collections().await.unwrap_err().kind, ErrorKind::NotFound);

    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "x").unwrap();
    let err = FilesConnector::new(&txt).check().await.unwrap_err();
    assert!(err.to_string().contains("neither a directory nor a .vcf or .ics file"), "{err}");

    // A collection id cannot leave the account's directory.
    let connector = FilesConnector::new(dir.path());
    let outside =
        Collection { id: "../x.vcf".into(), name: "x".into(), kind: CollectionKind::AddressBook, owner: None };
    let mut sink = VecSink::default();
    let request = SyncRequest { collection: &outside, since: None, known: &NoKnownVersions };
    assert_eq!(connector.sync(request, &mut sink).await.unwrap_err().kind, ErrorKind::NotFound);
    // A listed file that disappeared.
    let gone =
        Collection { id: "gone.vcf".into(), name: "gone".into(), kind: CollectionKind::AddressBook, owner: None };
    let request = SyncRequest { collection: &gone, since: None, known: &NoKnownVersions };
    let err = connector.sync(request, &mut sink).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.to_string().contains("gone.vcf"), "{err}");
}
