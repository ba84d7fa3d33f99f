// Read-only memory map of a whole file, shared by the trace reader (metrics/) and the
// dataset reader (datagen/). Opening refuses anything but a regular file (FIFOs, devices),
// and every failure throws std::runtime_error with one line naming the path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace moetb {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  void release_pages() const;  // madvise(DONTNEED): the kernel re-reads on next touch
  void release_pages(std::size_t begin, std::size_t end) const;  // the whole pages inside [begin, end)

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace moetb
