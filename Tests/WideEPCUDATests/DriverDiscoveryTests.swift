@testable import CUDADriver
import Testing
import WideEPCUDA
import WideEPRuntime

@Suite("CUDA discovery and availability")
struct DriverDiscoveryTests {
    @Test func availabilityNeverCrashesAndExplainsItself() {
        // On CI (no driver) this is false with a reason; on the GPU machine it is true with none.
        if CUDA.isAvailable {
            #expect(CUDA.unavailableReason == nil)
            #expect((try? CUDA.deviceCount()) ?? 0 > 0)
        } else {
            let reason = CUDA.unavailableReason
            #expect(reason != nil && !reason!.isEmpty)
            #expect(throws: CUDAError.self) { try CUDA.driver() }
            #expect(throws: CUDAError.self) { try GPU(ordinal: 0) }
        }
    }

    @Test func doctorReportMatchesAvailability() {
        let r = DoctorReport.probe()
        #expect(r.cudaAvailable == CUDA.isAvailable)
        #expect(r.libraries.map(\.name) == ["cuda", "nvrtc", "cublas", "cublasLt", "nccl"])
        if !r.cudaAvailable {
            #expect(r.devices.isEmpty)
            #expect(r.reason != nil)
        }
    }

    @Test func envOverrideComesFirstThenSonameThenToolkitThenPython() {
        let env = ["WIDEEP_NVRTC_LIB": "/opt/custom/libnvrtc.so", "CUDA_HOME": "/opt/cuda-13"]
        let c = LibraryLoader.candidates(for: LibraryLoader.nvrtc, environment: env)
        #expect(c.first == "/opt/custom/libnvrtc.so")
        #expect(c[1] == "libnvrtc.so.13")
        #expect(c[2] == "libnvrtc.so.12")
        let cudaHome = c.firstIndex(of: "/opt/cuda-13/lib64/libnvrtc.so.13")
        let usrLocal = c.firstIndex(of: "/usr/local/cuda/lib64/libnvrtc.so.13")
        #expect(cudaHome != nil && usrLocal != nil && cudaHome! < usrLocal!)
        #expect(Set(c).count == c.count)
    }

    @Test func missingOverrideIsReportedNotFatal() {
        let (lib, loc) = LibraryLoader.open(
            LibraryLoader.Spec(name: "nope", envOverride: "WIDEEP_NOPE_LIB", sonames: ["libwideep-does-not-exist.so.7"],
                               pythonDirs: ["nvidia/nope/lib"], probe: "nope"))
        #expect(lib == nil)
        #expect(loc.path == nil)
        #expect(loc.tried.contains("libwideep-does-not-exist.so.7"))
    }

    @Test func errorsCarryTheLibrarysMessage() {
        let e = CUDAError.nvrtc(call: "nvrtcCompileProgram(routing.cu)", code: 6, message: "NVRTC_ERROR_COMPILATION",
                                log: "routing.cu(3): error: identifier \"x\" is undefined\n")
        #expect(e.description.contains("NVRTC_ERROR_COMPILATION"))
        #expect(e.description.contains("identifier \"x\" is undefined"))
        let d = CUDAError.driver(call: "cuMemAlloc(16 bytes)", code: 2, message: "CUDA_ERROR_OUT_OF_MEMORY: out of memory")
        #expect(d.description.contains("cuMemAlloc") && d.description.contains("out of memory"))
    }
}

@Suite("CUDA backend registration")
struct CUDABackendRegistrationTests {
    @Test func cudaDeviceIsRegisteredAndExplainsWhenUnavailable() throws {
        CUDABackend.register()
        #expect(BackendRegistry.names.contains("cuda"))
        if CUDA.isAvailable {
            let b = try BackendRegistry.make("cuda", options: BackendOptions(numRanks: 1))
            #expect(b.deviceName == "cuda" && b.numRanks == 1)
        } else {
            #expect(throws: BackendError.self) { try BackendRegistry.make("cuda", options: BackendOptions(numRanks: 1)) }
        }
    }

    @Test func oneProcessDrivesOneGPU() {
        // Several ranks in one process are refused with a message that points at `wide-ep launch`, GPU or not.
        #expect(throws: (any Error).self) { try CUDABackend(options: BackendOptions(numRanks: 2)) }
    }
}
