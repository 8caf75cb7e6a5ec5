/// Deals items into `count` shares of about equal total size: largest first (equal sizes in the
/// order `before` gives, else by position), each into the share with the least so far. Each
/// share's items by their position in `sizes`, in the order they were dealt. `count` ≥ 1.
///
/// How a drill spreads work over the cores: `pg_verifybackup`'s runs (``VerifyBackupPlan``) and
/// the removal of a scratch directory's files (``DrillScratch``).
func sharesBySize(_ sizes: [Int64], count: Int, before: (Int, Int) -> Bool = { $0 < $1 }) -> [[Int]] {
    precondition(count >= 1, "at least one share")
    var shares = [[Int]](repeating: [], count: count)
    var load = [Int64](repeating: 0, count: count)
    for i in sizes.indices.sorted(by: { sizes[$0] > sizes[$1] || (sizes[$0] == sizes[$1] && before($0, $1)) }) {
        let lightest = load.indices.min { load[$0] < load[$1] }!  // count >= 1: never empty
        shares[lightest].append(i)
        load[lightest] += sizes[i]
    }
    return shares
}
