/// The text of `data/README.txt`: what each file of the bag is and how to load it.
enum ExportReadme {
    static func text(
        result: ExportResult, request: ExportRequest, symlinks: [(path: [UInt8], target: [UInt8])],
        escaped: [(original: [UInt8], written: [UInt8])]
    ) -> String {
        var t = """
            Export of tenant \(request.tenant), made by Tresor on \(Exporter.day(request.now)) (source: \(request.sourceLabel)).

            This is a BagIt 1.0 bag (RFC 8493). manifest-sha256.txt holds the SHA-256 of every file
            under data/; bag-info.txt says what was exported and when. Check it with the Library of
            Congress validator:  pip install bagit; bagit.py --validate FOLDER  (after unpacking).


            """
        if let origin = request.documentsOrigin { t += origin + "\n\n" }
        if let removed = request.removedPaths {
            t += """
                Only documents added or changed since the earlier snapshot named in bag-info.txt
                (Tresor-Documents-Since-Snapshot) are in this bag, with the folders that hold them.
                Paths that snapshot had and this one has not (\(removed.count)) are listed in the tag file
                tresor-removed-paths.txt, one per line, as data/documents/...; in those lines '%', line
                breaks and bytes that are not UTF-8 are written as %XX (hex). To bring a copy of the
                earlier export up to date: unpack this bag over it, then delete the listed paths.
                Pass Tresor-Documents-Snapshot from bag-info.txt as --since to the next export.


                """
        }
        if request.documents != nil {
            t += """
                data/documents/   The documents, with their original names and folder tree; each
                                  document root is a folder named after the root. Modification times
                                  and permissions are kept in the archive's headers. Hard-linked files
                                  appear once per name.


                """
        } else {
            t += "The tenant has no document folders registered: there is no data/documents/ folder.\n\n"
        }
        if let db = result.database {
            t += """
                data/database/schema.sql
                                  The schema only (pg_dump --schema-only --no-owner).
                data/database/dump.sql
                                  Schema and data as plain SQL (pg_dump --no-owner), with each table's
                                  rows in CSV: after "COPY ... FROM stdin WITH (FORMAT csv, HEADER
                                  true);" come the bytes of the table's CSV file below, then "\\.".
                                  pg_dump's own COPY format stays for tables with generated columns
                                  or none, and where a value has a line that is only "\\.". Loads
                                  with psql into a new, empty database of PostgreSQL \(db.serverVersion.split(separator: " ").first.map(String.init) ?? "") or newer:
                                      createdb mydb && psql -v ON_ERROR_STOP=1 -d mydb -f dump.sql
                data/database/tables/<schema>.<table>.csv
                                  One file per table, RFC 4180 CSV in UTF-8 with a header row of the
                                  column names, written by PostgreSQL's COPY (FORMAT csv, HEADER,
                                  FORCE_QUOTE *). Every value that is not NULL is in double quotes, so
                                  an empty string is "" and NULL is an empty, unquoted field. Line
                                  breaks inside values are kept inside the quotes. bytea values are hex
                                  ("\\x0102ff"); dates and times are ISO 8601 in UTC; numbers as
                                  PostgreSQL prints them. In a schema or table name, '/', '%' and
                                  control characters are written as %XX (hex of the UTF-8 byte).
                                  All tables come from one snapshot of the server, the one dump.sql
                                  and schema.sql were taken from, so they agree with each other.


                """
        }
        if let db = result.database {
            if let point = request.databasePoint {
                t += "The database was restored from backup to \(point.target) (last replayed commit \(point.time)) and exported from that copy.\n"
            }
            t += "Database \(db.database) at WAL position \(db.lsn), \(db.snapshotTime): \(db.tables.count) tables, "
            t += "\(db.tables.reduce(0) { $0 + $1.rows }) rows.\n"
            for tb in db.tables { t += "    \(tb.file)\t\(tb.rows) rows\n" }
            if !db.notCopied.isEmpty {
                t += "Relations without a CSV file (their definitions are in dump.sql):\n"
                for n in db.notCopied { t += "    \(n)\n" }
            }
            t += "\n"
        } else {
            t += "The tenant has no database registered: there is no data/database/ folder.\n\n"
        }
        if !symlinks.isEmpty {
            t += "Symbolic links are not files in this bag (BagIt has none); they were, relative to data/documents/:\n"
            for s in symlinks { t += "    \(printable(s.path)) -> \(printable(s.target))\n" }
            t += "\n"
        }
        if !escaped.isEmpty {
            t += """
                Names that were not UTF-8. Zip names must be UTF-8, so in these names every byte that
                is not part of a valid UTF-8 sequence, and every '%', is written as %XX. Original
                bytes in hex, then the name in this archive:

                """
            for e in escaped {
                t += "    \(e.original.map(hex2).joined())\t\(String(decoding: e.written, as: UTF8.self))\n"
            }
            t += "\n"
        }
        if !result.nonUTF8Names.isEmpty {
            t += """
                Names that are not UTF-8 are kept as bytes in this tar archive. The manifest, which
                must be UTF-8, writes their other bytes as %XX, so BagIt validators report these
                files; their content and hashes are exact:

                """
            for n in result.nonUTF8Names { t += "    \(n)\n" }
            t += "\n"
        }
        if !result.problems.isEmpty {
            t += "Problems during the export (also in the export's own report):\n"
            for p in result.problems { t += "    \(p.path): \(p.reason)\n" }
        }
        return t
    }
}
