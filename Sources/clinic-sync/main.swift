import ClinicSyncCLI

await ClinicSyncCommand.runMain()
