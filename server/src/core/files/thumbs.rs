//! Images: reading a blob's format and size from its header, and making thumbnails (blocking
//! work, run on the blocking pool). Only PNG, JPEG, GIF and WebP are read; decoding is bounded
//! (dimensions and memory), so a decompression bomb fails instead of eating the server.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader, Limits};

/// Longest edge of a thumbnail, in pixels (the aspect ratio is kept; smaller images are not
/// enlarged).
pub const THUMBNAIL_EDGE: u32 = 256;
/// Widest or tallest image decoded for a thumbnail.
const MAX_EDGE: u32 = 16_384;
/// Most memory one decode may allocate.
const MAX_ALLOC: u64 = 256 << 20;

/// What the header of an image blob says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageMeta {
    /// Its real type (wins over what the uploader claimed).
    pub mime: &'static str,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

fn mime(format: ImageFormat) -> Option<&'static str> {
    Some(match format {
        ImageFormat::Png => "image/png",
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Gif => "image/gif",
        ImageFormat::WebP => "image/webp",
        _ => return None,
    })
}

fn reader(path: &Path) -> Option<ImageReader<std::io::BufReader<std::fs::File>>> {
    let reader = ImageReader::open(path).ok()?.with_guessed_format().ok()?;
    mime(reader.format()?)?;
    Some(reader)
}

/// The type and size of an image blob, from its header (`None`: not an image this server
/// reads).
pub fn probe(path: &Path) -> Option<ImageMeta> {
    let reader = reader(path)?;
    let mime = mime(reader.format()?)?;
    let (width, height) = reader.into_dimensions().ok()?;
    Some(ImageMeta {
        mime,
        width,
        height,
    })
}

/// A thumbnail of the image at `path`: JPEG, or PNG if the image has transparency.
pub fn make(path: &Path) -> Result<Vec<u8>, String> {
    let mut reader = reader(path).ok_or("not an image this server reads")?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_EDGE);
    limits.max_image_height = Some(MAX_EDGE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| e.to_string())?;
    let thumb = match image.width().max(image.height()) > THUMBNAIL_EDGE {
        true => image.thumbnail(THUMBNAIL_EDGE, THUMBNAIL_EDGE),
        false => image,
    };
    let mut out = Cursor::new(Vec::new());
    if thumb.color().has_alpha() {
        thumb
            .write_to(&mut out, ImageFormat::Png)
            .map_err(|e| e.to_string())?;
    } else {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
        thumb
            .to_rgb8()
            .write_with_encoder(encoder)
            .map_err(|e| e.to_string())?;
    }
    Ok(out.into_inner())
}

/// The MIME type of a thumbnail made by [`make`].
pub fn thumbnail_mime(bytes_start: &[u8]) -> &'static str {
    match bytes_start.starts_with(b"\x89PNG") {
        true => "image/png",
        false => "image/jpeg",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_thumbnails_a_png_and_refuses_other_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a");
        image::RgbImage::from_fn(600, 300, |x, y| image::Rgb([x as u8, y as u8, 7]))
            .save_with_format(&png, ImageFormat::Png)
            .unwrap();
        let meta = probe(&png).unwrap();
        assert_eq!(
            (meta.mime, meta.width, meta.height),
            ("image/png", 600, 300)
        );
        let thumb = make(&png).unwrap();
        assert_eq!(thumbnail_mime(&thumb), "image/jpeg");
        let decoded = image::load_from_memory(&thumb).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (256, 128));

        let text = dir.path().join("b");
        std::fs::write(&text, b"just text, not an image").unwrap();
        assert_eq!(probe(&text), None);
        assert!(make(&text).is_err());
    }
}
