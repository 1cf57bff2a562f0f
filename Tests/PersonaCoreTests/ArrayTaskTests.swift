import XCTest
@testable import PersonaCore

/// A task's share of a job array, from the variables Slurm 22.05 and Kubernetes Indexed Jobs set.
final class ArrayTaskTests: XCTestCase {
    func testOutsideAnArrayThereIsNoTask() throws {
        XCTAssertNil(try ArrayTask.fromEnvironment([:]))
        XCTAssertNil(try ArrayTask.fromEnvironment(["SLURM_JOB_ID": "12"]))   // a plain batch job is not an array
    }

    func testSlurmArray() throws {
        let t = try XCTUnwrap(ArrayTask.fromEnvironment(["SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4",
                                                         "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_JOB_ID": "41"]))
        XCTAssertEqual(t.index, 3); XCTAssertEqual(t.count, 4)
        XCTAssertTrue(t.source.contains("SLURM_ARRAY_TASK_ID=3") && t.source.contains("41"), t.source)
        // --array=10-16:2 gives ids 10, 12, 14, 16: task 14 is the third.
        let s = try XCTUnwrap(ArrayTask.fromEnvironment(["SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_COUNT": "4",
                                                         "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_STEP": "2"]))
        XCTAssertEqual(s.index, 2)
    }

    func testSlurmArraysThatCannotBeSharesAreRefused() {
        // --array=1,3,7: three tasks whose ids are not a range.
        XCTAssertThrowsError(try ArrayTask.fromEnvironment(["SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "3",
                                                            "SLURM_ARRAY_TASK_MIN": "1"])) { XCTAssertTrue("\($0)".contains("contiguous"), "\($0)") }
        XCTAssertThrowsError(try ArrayTask.fromEnvironment(["SLURM_ARRAY_TASK_ID": "1"])) { XCTAssertTrue("\($0)".contains("SLURM_ARRAY_TASK_COUNT"), "\($0)") }
        XCTAssertThrowsError(try ArrayTask.fromEnvironment(["SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"]))
    }

    func testKubernetesIndexedJob() throws {
        let t = try XCTUnwrap(ArrayTask.fromEnvironment(["JOB_COMPLETION_INDEX": "2", "PERSONA_SHARD_COUNT": "8"]))
        XCTAssertEqual(t.index, 2); XCTAssertEqual(t.count, 8)
        XCTAssertThrowsError(try ArrayTask.fromEnvironment(["JOB_COMPLETION_INDEX": "2"])) { XCTAssertTrue("\($0)".contains("PERSONA_SHARD_COUNT"), "\($0)") }
        XCTAssertThrowsError(try ArrayTask.fromEnvironment(["JOB_COMPLETION_INDEX": "8", "PERSONA_SHARD_COUNT": "8"]))
    }

    func testTasksAreSplitOverTraitsInBlocks() throws {
        let shares = try (0..<8).map { try ArrayTask(index: $0, count: 8, source: "").split(traits: 2) }
        XCTAssertEqual(shares.map(\.trait), [0, 0, 0, 0, 1, 1, 1, 1])
        XCTAssertEqual(shares.map(\.shard), (0..<8).map { Shard(index: $0 % 4, count: 4) })
        XCTAssertEqual(try ArrayTask(index: 1, count: 2, source: "").split(traits: 2).shard, .whole)
        XCTAssertThrowsError(try ArrayTask(index: 0, count: 6, source: "").split(traits: 4))
    }
}
